package benchload

import (
	"context"
	"sync"
	"testing"
)

// Parallel runs f for 0..n-1 on workers goroutines, failing on the first
// error, and returns how many it ran: all n, or fewer when ctx ended first
// (f ran for 0 to the count less one).
func Parallel(tb testing.TB, ctx context.Context, workers, n int, f func(int) error) int {
	tb.Helper()
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	sent := 0
	for ; sent < n; sent++ {
		select {
		case next <- sent:
			continue
		case <-ctx.Done():
		}
		break
	}
	close(next)
	wg.Wait()
	if first != nil {
		tb.Fatal(first)
	}
	return sent
}
