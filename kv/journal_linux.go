//go:build linux

package kv

import (
	"os"
	"syscall"
)

// fdatasync syncs f's data without its times: a preallocated segment's size
// and blocks do not change when a record is written into it.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
