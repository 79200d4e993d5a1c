// Package clone holds the slice copy that supportaccess and memstore both
// use to hand out grants whose slices callers cannot reach stored state
// through.
package clone

// Slice copies s exactly (nil stays nil) with one right-sized allocation;
// cheaper than slices.Clone's append path on the Check path.
func Slice[T any](s []T) []T {
	if s == nil {
		return nil
	}
	out := make([]T, len(s))
	copy(out, s)
	return out
}
