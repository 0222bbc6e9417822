//go:build !linux

package sipptest

import (
	"syscall"
	"time"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// waitState cannot look at the process state here: give the signal a moment.
func waitState(pid int, stopped bool) { time.Sleep(50 * time.Millisecond) }
