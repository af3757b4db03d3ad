// Package ctxtest holds a context for tests of cancellation: one that
// reports context.Canceled from a chosen check on, so a long operation can
// be stopped at one exact point of its progress, which a timer cannot do
// the same way on a fast and a slow machine.
package ctxtest

import (
	"context"
	"sync/atomic"
)

// Countdown is a context whose Err lets n checks pass and reports
// context.Canceled from check n+1 on. Only Err counts: the operations it tests poll Err at their
// checks and never wait on Done.
type Countdown struct {
	context.Context
	left, calls atomic.Int64
}

// NewCountdown returns a Countdown that lets n checks pass.
func NewCountdown(n int64) *Countdown {
	c := &Countdown{Context: context.Background()}
	c.left.Store(n)
	return c
}

// Err implements context.Context.
func (c *Countdown) Err() error {
	c.calls.Add(1)
	if c.left.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// Calls is how many times Err was called: run an operation under
// NewCountdown(1<<62) to count its checks.
func (c *Countdown) Calls() int64 { return c.calls.Load() }
