package sqlstore

// CheckQuery returns the SQL of FindActiveGrant as sent to the database
// (for EXPLAIN tests and the baseline benchmark).
func (s *Store) CheckQuery() string { return s.q.findActive }

// GrantColumns lists the grant columns in the order of CheckQuery.
const GrantColumns = grantCols
