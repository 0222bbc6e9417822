//go:build linux

package kv

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// dropMapped drops this process's page-table entries for n bytes at addr, part
// of a read-only shared file mapping: the pages stay in the page cache and a
// later read maps them again (a minor fault); they stop counting in RSS.
// MADV_DONTNEED never loses data of such a mapping, which has none of its own.
func dropMapped(addr uintptr, n int64) error {
	if n <= 0 {
		return nil
	}
	if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, addr, uintptr(n), syscall.MADV_DONTNEED); e != 0 {
		return e
	}
	return nil
}

// mappedBytes is the process's resident file-backed and shared memory
// (/proc/self/statm's third field), or -1 if unknown.
func mappedBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := bytes.Fields(b)
	if len(f) < 3 {
		return -1
	}
	pages, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}
