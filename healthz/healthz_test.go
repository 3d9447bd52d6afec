package healthz

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/spf13/pflag"

	"github.com/skypod/skypod/internal/flagutil"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func get(t *testing.T, mux http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestHealthzResults(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	var output []byte
	var runErr error
	run := func(_ context.Context, _ string, out io.Writer) error {
		_, _ = out.Write(output)
		return runErr
	}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	p := NewProber(Probe{Cmd: "nslookup x", URL: "/healthz"}, run, clock.now, time.Second, metrics, slog.New(slog.DiscardHandler))
	mux := Mux([]*Prober{p}, 30*time.Second, reg)

	tests := []struct {
		name   string
		step   func()
		path   string
		code   int
		body   string
		prefix bool
	}{
		{"healthy before the first run, as in 1.0", func() {}, "/healthz", 200, "ok", false},
		{"a failed run", func() {
			output, runErr = []byte("server can't find x"), errors.New("exit status 1")
			p.RunOnce(context.Background())
		},
			"/healthz", 503, "Healthz probe error: Result of last exec: server can't find x, at ", true},
		{"a good run", func() { output, runErr = []byte("Name: x"), nil; p.RunOnce(context.Background()) }, "/healthz", 200, "ok", false},
		{"the result grows old", func() { clock.t = clock.t.Add(31 * time.Second) }, "/healthz", 503, "Latest result too old to be useful: Result of last exec: Name: x", true},
		{"unknown paths are 404", func() {}, "/", 404, "", true},
		{"no /quit", func() {}, "/quit", 404, "", true},
	}
	for _, tc := range tests {
		tc.step()
		code, body := get(t, mux, tc.path)
		if code != tc.code || (tc.prefix && !strings.HasPrefix(body, tc.body)) || (!tc.prefix && body != tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, code, body, tc.code, tc.body)
		}
	}
	if got := promtestutil.ToFloat64(metrics.failures.WithLabelValues("/healthz")); got != 1 {
		t.Errorf("failures = %v", got)
	}
	if got := promtestutil.ToFloat64(metrics.runs.WithLabelValues("/healthz")); got != 2 {
		t.Errorf("runs = %v", got)
	}
}

func TestHangingCommandIsKilled(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := NewProber(Probe{Cmd: "sleep 30", URL: "/healthz"}, startReaper(t).Shell, time.Now, 200*time.Millisecond, NewMetrics(reg), slog.New(slog.DiscardHandler))
	start := time.Now()
	p.RunOnce(context.Background())
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a hanging command held the prober for %v", took)
	}
	if r := p.Last(); r.Err == nil || !strings.Contains(r.Err.Error(), "killed after") {
		t.Fatalf("result %v, want a timeout error", r)
	}
}

func TestShellKeepsRedirections(t *testing.T) {
	var out bytes.Buffer
	err := startReaper(t).Shell(context.Background(), "echo visible; echo hidden >/dev/null", &out)
	if err != nil || out.String() != "visible\n" {
		t.Fatalf("%q %v", out.String(), err)
	}
}

func TestMultiProbeWording(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	fail := func(context.Context, string, io.Writer) error { return errors.New("boom") }
	log := slog.New(slog.DiscardHandler)
	a := NewProber(Probe{Cmd: "a", URL: "/a"}, fail, time.Now, time.Second, m, log)
	b := NewProber(Probe{Cmd: "b", URL: "/b"}, fail, time.Now, time.Second, m, log)
	a.RunOnce(context.Background())
	mux := Mux([]*Prober{a, b}, time.Minute, reg)
	if code, body := get(t, mux, "/a"); code != 503 || !strings.HasPrefix(body, "Healthz probe on /a error: ") {
		t.Errorf("/a: %d %q", code, body)
	}
	if code, _ := get(t, mux, "/b"); code != 200 {
		t.Errorf("/b has not run yet: %d", code)
	}
}

// A probe's failure and truncation counters are there at 0 before it
// runs, so the first failure is an increase; its runs and duration are not.
func TestProbeCountersStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewProber(Probe{Cmd: "a", URL: "/a"}, nil, time.Now, time.Second, NewMetrics(reg), slog.New(slog.DiscardHandler))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) == 1 { // By url; orphans_reaped_total has none.
				got[f.GetName()+" "+m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{"exechealthz_probe_failures_total /a": 0, "exechealthz_probe_output_truncated_total /a": 0}
	if !maps.Equal(got, want) {
		t.Errorf("before a run: %v, want %v", got, want)
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr bool
		probes  []Probe
	}{
		{[]string{"-cmd=nslookup kubernetes.default.svc.cluster.local 127.0.0.1 >/dev/null", "-port=8080"}, false,
			[]Probe{{"nslookup kubernetes.default.svc.cluster.local 127.0.0.1 >/dev/null", "/healthz"}}},
		{nil, false, []Probe{{"echo healthz", "/healthz"}}},
		{[]string{"--cmd=a", "--url=/a", "--cmd=b", "--url=/b"}, false, []Probe{{"a", "/a"}, {"b", "/b"}}},
		{[]string{"--cmd=a", "--cmd=b", "--url=/a"}, true, nil},
		{[]string{"--cmd=a", "--url=metrics"}, true, nil},
		{[]string{"-period=0s"}, true, nil},
		{[]string{"-port=99999"}, true, nil},
	}
	for _, tc := range tests {
		cfg := NewConfig()
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		cfg.AddFlags(fs)
		err := flagutil.Parse(fs, tc.args)
		if err == nil {
			err = cfg.Finish()
		}
		if (err != nil) != tc.wantErr {
			t.Errorf("%v: err %v", tc.args, err)
			continue
		}
		if err == nil && strings.Join(probeStrings(cfg.Probes()), "|") != strings.Join(probeStrings(tc.probes), "|") {
			t.Errorf("%v: probes %v, want %v", tc.args, cfg.Probes(), tc.probes)
		}
	}
}

func probeStrings(ps []Probe) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Cmd+"@"+p.URL)
	}
	return out
}

// Run returns only after its probers have: here the probe command outlives
// the HTTP server's shutdown, and is still the last thing to end.
func TestRunReturnsOnlyAfterItsProbersStopped(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var startOnce sync.Once
	var ended atomic.Bool
	slowToStop := func(ctx context.Context, _ string, _ io.Writer) error {
		startOnce.Do(func() { close(started) })
		<-ctx.Done()
		<-release // Held by the test until the server has stopped.
		ended.Store(true)
		return ctx.Err()
	}
	reg := prometheus.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	p := NewProber(Probe{Cmd: "slow", URL: "/healthz"}, slowToStop, time.Now, time.Minute, NewMetrics(reg), log)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	returned := make(chan error, 1)
	go func() { returned <- superviseProbers(ctx, log, ln, []*Prober{p}, time.Millisecond, time.Minute, reg) }()

	waitFor(t, started, "the probe command to start")
	cancel()
	waitUntil(t, "the HTTP server to stop", func() bool {
		conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", ln.Addr().String())
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	close(release)
	select {
	case err := <-returned:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if !ended.Load() {
			t.Fatal("Run returned while its probe command was still running")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of its probe command ending")
	}
}

func waitFor(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("waited 10s for %s", what)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
