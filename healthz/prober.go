package healthz

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Result is one run of a command.
type Result struct {
	Output []byte
	Err    error
	At     time.Time
}

func (r Result) String() string {
	return fmt.Sprintf("Result of last exec: %s, at %v, error %v", r.Output, r.At, r.Err)
}

// Prober runs one probe's command every period and keeps the last result.
type Prober struct {
	probe   Probe
	run     Runner
	now     func() time.Time
	timeout time.Duration
	metrics *Metrics
	log     *slog.Logger

	mu   sync.Mutex
	last Result
}

// NewProber starts with an empty, successful result at now(), as the
// legacy sidecar did: healthy until the first run says otherwise or the
// result grows older than the allowed latency.
func NewProber(p Probe, run Runner, now func() time.Time, timeout time.Duration, metrics *Metrics, log *slog.Logger) *Prober {
	metrics.start(p.URL)
	return &Prober{probe: p, run: run, now: now, timeout: timeout, metrics: metrics, log: log, last: Result{At: now()}}
}

// Last is the latest result.
func (p *Prober) Last() Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// RunOnce runs the command with the timeout and records the result, its
// output bounded to MaxOutput.
func (p *Prober) RunOnce(ctx context.Context) {
	start := p.now()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	out := newTail(MaxOutput)
	err := p.run(ctx, p.probe.Cmd, out)
	cancel()
	if ctx.Err() == context.DeadlineExceeded && err != nil {
		err = fmt.Errorf("killed after %v: %w", p.timeout, err)
	}
	r := Result{Output: out.Bytes(), Err: err, At: p.now()}
	p.mu.Lock()
	p.last = r
	p.mu.Unlock()
	p.metrics.observe(p.probe.URL, err, r.At.Sub(start), out.Cut())
	if err != nil {
		p.log.Warn("probe failed", "url", p.probe.URL, "cmd", p.probe.Cmd, "err", err, "output", string(r.Output))
	} else {
		p.log.Info("probe ok", "url", p.probe.URL, "seconds", r.At.Sub(start).Seconds())
	}
}

// Run probes every period until ctx ends, the first run one period after
// start. A run longer than the period delays the next instead of piling up.
func (p *Prober) Run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.RunOnce(ctx)
		}
	}
}
