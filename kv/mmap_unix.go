//go:build unix

package kv

import (
	"os"
	"runtime/debug"
	"syscall"
)

// checkOpenFile runs checkFile over a read-only memory map of f, which spares a
// system call per page; a fault (the file shrank under the map) is an error, not
// a crash. The map, and the RSS it brings, last as long as the check
// (docs/decisions.md §35, "Memory").
func checkOpenFile(f *os.File, size int64) (err error) {
	if int64(int(size)) != size {
		return checkFile(f, size)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return checkFile(f, size) // e.g. a file system without mmap
	}
	defer syscall.Munmap(data)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = corrupt("reading the file failed: %v", r)
		}
	}()
	return checkBytes(data)
}
