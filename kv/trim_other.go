//go:build !linux

package kv

func dropMapped(uintptr, int64) error { return nil }

func mappedBytes() int64 { return -1 }
