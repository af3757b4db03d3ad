package gemm

import (
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU returns the CPU time consumed by the calling OS thread. Time a
// thread spends descheduled (the cores are shared) does not count, so
// single-threaded efficiency measured with it is stable under load.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return time.Duration(ts.Nano())
}

// processCPU returns the CPU time (user and system) consumed by all the
// process's threads: a parallel call's work, the time its workers spend
// waiting for each other while running included, but not the time they
// spend descheduled.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const haveThreadCPU = true
