package healthz

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// Run probes and serves until ctx ends.
func Run(ctx context.Context, cfg *Config, log *slog.Logger, reg *prometheus.Registry) error {
	ln, err := httpserve.Listen(net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return err
	}
	metrics := NewMetrics(reg)
	var probers []*Prober
	for _, p := range cfg.Probes() {
		pr := NewProber(p, ShellRunner, time.Now, cfg.Timeout, metrics, log)
		probers = append(probers, pr)
		go pr.Run(ctx, cfg.Period)
	}
	return httpserve.Serve(ctx, log, ln, Mux(probers, cfg.Latency, reg))
}
