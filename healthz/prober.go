package healthz

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"time"
)

// Runner runs one command line and returns its combined output.
type Runner func(ctx context.Context, cmd string) ([]byte, error)

// ShellRunner runs cmd through "sh -c", as exec-healthz always has, so
// redirections like ">/dev/null" in the legacy manifest work as written.
func ShellRunner(ctx context.Context, cmd string) ([]byte, error) {
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.WaitDelay = time.Second // Do not wait on pipes held open by orphaned children.
	return c.CombinedOutput()
}

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
	return &Prober{probe: p, run: run, now: now, timeout: timeout, metrics: metrics, log: log, last: Result{At: now()}}
}

// Last is the latest result.
func (p *Prober) Last() Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// RunOnce runs the command with the timeout and records the result.
func (p *Prober) RunOnce(ctx context.Context) {
	start := p.now()
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	out, err := p.run(ctx, p.probe.Cmd)
	cancel()
	if ctx.Err() == context.DeadlineExceeded && err != nil {
		err = fmt.Errorf("killed after %v: %w", p.timeout, err)
	}
	r := Result{Output: out, Err: err, At: p.now()}
	p.mu.Lock()
	p.last = r
	p.mu.Unlock()
	p.metrics.observe(p.probe.URL, err, r.At.Sub(start))
	if err != nil {
		p.log.Warn("probe failed", "url", p.probe.URL, "cmd", p.probe.Cmd, "err", err, "output", string(out))
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
