package healthz

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/skypod/skypod/internal/httpserve"
)

// Mux serves each probe's path and /metrics; every other path is a 404
// (the legacy sidecar answered 200 with an index page, and /quit exited).
func Mux(probers []*Prober, latency time.Duration, reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	for _, p := range probers {
		mux.Handle(p.probe.URL, handler(p, latency, len(probers) > 1))
	}
	mux.Handle("/metrics", httpserve.MetricsHandler(reg))
	return mux
}

// Run probes and serves until ctx ends, and returns only once every prober,
// the HTTP server and the reaper have stopped.
func Run(ctx context.Context, cfg *Config, log *slog.Logger, reg *prometheus.Registry) error {
	ln, err := httpserve.Listen(net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return err
	}
	metrics := NewMetrics(reg)
	reaper := NewReaper(log, metrics)
	var probers []*Prober
	for _, p := range cfg.Probes() {
		probers = append(probers, NewProber(p, reaper.Shell, time.Now, cfg.Timeout, metrics, log))
	}
	// The reaper outlives the probers: a probe command stopped at shutdown
	// is collected by it.
	return reaper.While(ctx, func(ctx context.Context) error {
		return superviseProbers(ctx, log, ln, probers, cfg.Period, cfg.Latency, reg)
	})
}

// superviseProbers runs each prober and the server on ln under one group:
// when ctx ends, or the server fails, all of them stop, and it returns
// after the last one has, so no probe command outlives Run.
func superviseProbers(ctx context.Context, log *slog.Logger, ln net.Listener, probers []*Prober, period, latency time.Duration, reg *prometheus.Registry) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, p := range probers {
		g.Go(func() error {
			p.Run(ctx, period)
			return nil
		})
	}
	g.Go(func() error { return httpserve.Serve(ctx, log, ln, Mux(probers, latency, reg)) })
	return g.Wait()
}
