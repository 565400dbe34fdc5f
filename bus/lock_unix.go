//go:build unix

package bus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFile is the lock's name inside the data directory.
const lockFile = "gallerist.lock"

// lockDataDir takes an exclusive, non-blocking flock on dir/gallerist.lock
// for as long as the returned unlock is not called. flock locks belong to
// the open file, so a second server in this process is refused too, and
// the kernel releases the lock when the process dies.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked (is gallerist serve running on it?)", ErrDataDirInUse, dir)
		}
		return nil, fmt.Errorf("data dir lock %s: %w", path, err)
	}
	return func() { _ = f.Close() }, nil
}
