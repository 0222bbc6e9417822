package mariadbtest

import "syscall"

// sysProcAttr: mariadbd dies with the test binary even if no cleanup runs.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
