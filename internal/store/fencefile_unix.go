//go:build unix

package store

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFenceFile takes the connection's fence across processes on SQLite:
// an flock on a file beside the database, shared for calendar writes and
// exclusive for revocations. The in-process fence orders goroutines; this
// one orders processes (`termind connections revoke` beside a running
// `termind serve`). It returns the function that releases it.
func (s *Store) lockFenceFile(id string, exclusive bool) (func(), error) {
	if s.lockDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(s.lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("fence: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.lockDir, id+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fence: %w", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("fence: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
