// Package periodic runs a function at an interval in the background: a
// lease's renewal, a status flush, a cancel poll.
package periodic

import (
	"context"
	"time"
)

// Every calls fn every interval, in its own goroutine, until fn returns
// false, ctx ends, or stop is called; stop waits for the goroutine to end.
func Every(ctx context.Context, interval time.Duration, fn func(ctx context.Context) (more bool)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if !fn(ctx) {
					return
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
