// Package backoff is the retry pacing skydns and kube2sky share: waits that
// double from a floor to a ceiling and end early with their context.
package backoff

import (
	"context"
	"time"
)

// Doubling waits Min, then twice as long each time, up to Max.
type Doubling struct {
	Min, Max time.Duration
	next     time.Duration
}

// Wait sleeps for the next interval, or until ctx ends.
func (d *Doubling) Wait(ctx context.Context) {
	if d.next == 0 {
		d.next = d.Min
	}
	Sleep(ctx, d.next)
	d.next = min(2*d.next, d.Max)
}

// Reset starts the next wait from Min again, after a success.
func (d *Doubling) Reset() { d.next = 0 }

// Sleep waits for dur or until ctx ends, whichever is first.
func Sleep(ctx context.Context, dur time.Duration) {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
