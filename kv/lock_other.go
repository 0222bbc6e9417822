//go:build !unix

package kv

import (
	"os"
	"time"
)

// lockFile leaves locking to bbolt where flock is not available.
func lockFile(*os.File, bool, time.Duration) error { return nil }
