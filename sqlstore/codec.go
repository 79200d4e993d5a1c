package sqlstore

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Lists (Grant.Grantees, Grant.Scopes, Event.Attrs) are stored as text in
// one column: every element is followed by a newline, and a backslash or a
// newline inside an element is escaped as \\ or \n. The encoding round-trips
// any strings exactly (an empty list is "", one empty element is "\n"), and
// a nil list is NULL.

// encodeList returns the stored form of list, or nil (NULL) for a nil list.
func encodeList[S ~string](list []S) any {
	if list == nil {
		return nil
	}
	var b strings.Builder
	for _, s := range list {
		writeEscaped(&b, string(s))
		b.WriteByte('\n')
	}
	return b.String()
}

func writeEscaped(b *strings.Builder, s string) {
	if !strings.ContainsAny(s, "\\\n") {
		b.WriteString(s)
		return
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(s[i])
		}
	}
}

// needle returns what a grantees column holding element s contains when
// prefixed with a newline: "\n" + escaped s + "\n".
func needle(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\n')
	writeEscaped(&b, s)
	b.WriteByte('\n')
	return b.String()
}

// decodeList parses the stored form of a list.
func decodeList[S ~string](v string) ([]S, error) {
	n := strings.Count(v, "\n")
	out := make([]S, 0, n)
	for len(v) > 0 {
		i := strings.IndexByte(v, '\n')
		if i < 0 {
			return nil, fmt.Errorf("sqlstore: malformed list column: unterminated element")
		}
		elem := v[:i]
		v = v[i+1:]
		if strings.IndexByte(elem, '\\') < 0 {
			out = append(out, S(elem))
			continue
		}
		var b strings.Builder
		for j := 0; j < len(elem); j++ {
			c := elem[j]
			if c != '\\' {
				b.WriteByte(c)
				continue
			}
			j++
			if j == len(elem) {
				return nil, fmt.Errorf("sqlstore: malformed list column: trailing backslash")
			}
			switch elem[j] {
			case '\\':
				b.WriteByte('\\')
			case 'n':
				b.WriteByte('\n')
			default:
				return nil, fmt.Errorf("sqlstore: malformed list column: bad escape")
			}
		}
		out = append(out, S(b.String()))
	}
	return out, nil
}

// encodeAttrs stores a map as the list k1, v1, k2, v2, … in key order.
func encodeAttrs(m map[string]string) any {
	if m == nil {
		return nil
	}
	kv := make([]string, 0, 2*len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kv = append(kv, k, m[k])
	}
	return encodeList(kv)
}

func decodeAttrs(v string) (map[string]string, error) {
	kv, err := decodeList[string](v)
	if err != nil {
		return nil, err
	}
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("sqlstore: malformed attrs column: odd number of elements")
	}
	m := make(map[string]string, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m, nil
}

// nullText scans a nullable text column, telling NULL from "".
type nullText struct {
	s     string
	valid bool
}

// Scan implements sql.Scanner.
func (n *nullText) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		n.s, n.valid = "", false
	case string:
		n.s, n.valid = v, true
	case []byte:
		n.s, n.valid = string(v), true
	default:
		return fmt.Errorf("sqlstore: cannot scan %T into text", src)
	}
	return nil
}

// bytesScanner scans a nullable binary column into *b: NULL is nil, an
// empty value is a non-nil empty slice (drivers differ on that).
type bytesScanner struct{ b *[]byte }

// Scan implements sql.Scanner.
func (s bytesScanner) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s.b = nil
	case []byte:
		*s.b = append(make([]byte, 0, len(v)), v...)
	case string:
		*s.b = append(make([]byte, 0, len(v)), v...)
	default:
		return fmt.Errorf("sqlstore: cannot scan %T into bytes", src)
	}
	return nil
}

// bytesArg encodes b for a binary column: NULL for nil, else the bytes
// (an empty non-nil slice stays empty, not NULL).
func bytesArg(b []byte) any {
	if b == nil {
		return nil
	}
	if len(b) == 0 {
		return []byte{}
	}
	return b
}
