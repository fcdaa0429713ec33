package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockJob takes an exclusive file lock for one job in a local storage
// folder: the folder's create-if-not-exists is atomic only within a
// process, so two `helios job run` of the same job must not overlap. The
// kernel drops the lock if the process dies.
func lockJob(dir, id string) (unlock func(), err error) {
	locks := filepath.Join(dir, ".locks")
	if err := os.MkdirAll(locks, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(locks, id+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("job %q is being run by another helios process on this storage folder", id)
		}
		return nil, err
	}
	return func() { f.Close() }, nil
}
