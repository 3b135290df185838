//go:build !unix

package server

// openFileLimit is unknown off Unix; the default cap applies.
func openFileLimit() (uint64, bool) { return 0, false }
