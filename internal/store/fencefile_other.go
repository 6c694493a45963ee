//go:build !unix

package store

// lockFenceFile: without flock the fence is in-process only, which
// matches SQLite's single-node use.
func (s *Store) lockFenceFile(id string, exclusive bool) (func(), error) { return func() {}, nil }
