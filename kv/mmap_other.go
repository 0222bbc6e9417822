//go:build !unix

package kv

import "os"

func checkOpenFile(f *os.File, size int64) error { return checkFile(f, size) }
