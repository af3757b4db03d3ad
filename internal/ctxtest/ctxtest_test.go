package ctxtest

import (
	"context"
	"testing"
)

func TestCountdown(t *testing.T) {
	c := NewCountdown(3)
	for i, want := range []error{nil, nil, nil, context.Canceled, context.Canceled} {
		if got := c.Err(); got != want {
			t.Errorf("check %d: Err = %v, want %v", i+1, got, want)
		}
	}
	if c.Calls() != 5 {
		t.Errorf("Calls = %d, want 5", c.Calls())
	}
}
