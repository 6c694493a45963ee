// Package spool writes whole files into a directory: the embedded
// delivery default drops every mail (.eml) and SMS (.json) there. A reader
// never sees a half-written file.
package spool

import (
	"os"
	"path/filepath"
)

// ValidName reports whether name is safe as a file name: letters, digits,
// '-', '_' and '.', not starting with '.', at most 200 bytes.
func ValidName(name string) bool {
	if name == "" || name[0] == '.' || len(name) > 200 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// Write stores data as dir/name: written to a temporary file, synced, and
// renamed into place, so the file appears complete or not at all.
func Write(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}
