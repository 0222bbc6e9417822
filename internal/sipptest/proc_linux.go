package sipptest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// sysProcAttr: sipp dies with the test binary even if no cleanup runs.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// waitState waits (up to 2 s) until every thread of pid is stopped (state
// T) or, with stopped false, none is: signals are delivered asynchronously.
func waitState(pid int, stopped bool) {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if allStopped(pid) == stopped {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// allStopped reports whether every thread of pid is in state T (stopped).
func allStopped(pid int) bool {
	tasks, _ := filepath.Glob(filepath.Join("/proc", itoa(pid), "task", "*", "stat"))
	if len(tasks) == 0 {
		return false
	}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			return false
		}
		// pid (comm) state ...: comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) || s[i+2] != 'T' {
			return false
		}
	}
	return true
}
