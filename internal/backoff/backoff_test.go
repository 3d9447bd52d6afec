package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDoublingStopsWithItsContext(t *testing.T) {
	d := Doubling{Min: time.Millisecond, Max: 4 * time.Millisecond}
	ctx := context.Background()
	for _, want := range []time.Duration{1, 2, 4, 4} {
		if d.next != 0 && d.next != want*time.Millisecond {
			t.Fatalf("next wait %v, want %v", d.next, want*time.Millisecond)
		}
		d.Wait(ctx)
	}
	d.Reset()
	if d.next != 0 {
		t.Fatal("Reset must start from Min")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	start := time.Now()
	Sleep(cancelled, time.Hour)
	if time.Since(start) > time.Second {
		t.Fatal("Sleep ignored its cancelled context")
	}
}
