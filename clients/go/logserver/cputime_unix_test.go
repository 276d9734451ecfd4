//go:build unix

package logserver_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system, every thread) the process has used: a
// benchmark's cost that, unlike its wall time, another program's load on the machine
// barely changes.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
