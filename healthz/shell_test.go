package healthz

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/skypod/skypod/internal/proctest"
)

func TestTailKeepsTheLastBytes(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
		cut    bool
	}{
		{"within the bound", []string{"abc", "de"}, "abcde", false},
		{"exactly the bound", []string{"abcdefgh"}, "abcdefgh", false},
		{"over, in one write", []string{"0123456789"}, "[exec-healthz: output cut to its last 8 bytes, 2 before them dropped]\n23456789", true},
		{"over, across writes", []string{"01234", "56789", "ab"}, "[exec-healthz: output cut to its last 8 bytes, 4 before them dropped]\n456789ab", true},
		{"a cut through a rune drops its tail", []string{"x", "é1234567"}, "[exec-healthz: output cut to its last 7 bytes, 3 before them dropped]\n1234567", true},
	}
	for _, tc := range tests {
		tb := newTail(8)
		for _, w := range tc.writes {
			if n, err := tb.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("%s: Write = %d, %v", tc.name, n, err)
			}
		}
		if got := string(tb.Bytes()); got != tc.want || tb.Cut() != tc.cut {
			t.Errorf("%s: %q cut=%v, want %q cut=%v", tc.name, got, tb.Cut(), tc.want, tc.cut)
		}
	}
}

// startReaper runs a reaper for the rest of the test. The test binary
// becomes a child subreaper, as exec-healthz does.
func startReaper(t *testing.T) *Reaper {
	t.Helper()
	return startReaperWith(t, NewMetrics(prometheus.NewRegistry()))
}

func startReaperWith(t *testing.T, m *Metrics) *Reaper {
	t.Helper()
	r := NewReaper(slog.New(slog.DiscardHandler), m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.While(ctx, func(ctx context.Context) error {
			<-ctx.Done()
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return r
}

func TestShellStatuses(t *testing.T) {
	r := startReaper(t)
	tests := []struct{ cmd, out, err string }{
		{"echo ok", "ok\n", "<nil>"},
		{"echo out; echo err >&2; exit 3", "out\nerr\n", "exit status 3"},
		{"kill -9 $$", "", "signal: killed"},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		err := r.Shell(context.Background(), tc.cmd, &out)
		if out.String() != tc.out || fmt.Sprint(err) != tc.err {
			t.Errorf("%q: %q %v, want %q %s", tc.cmd, out.String(), err, tc.out, tc.err)
		}
	}
}

// A timeout kills the command's grandchildren too, not only the shell.
func TestShellTimeoutKillsTheWholeGroup(t *testing.T) {
	r := startReaper(t)
	arg := proctest.SleepArg()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := r.Shell(ctx, fmt.Sprintf("sleep %s & sleep %s; echo never", arg, arg), &bytes.Buffer{})
	if fmt.Sprint(err) != "signal: killed" {
		t.Fatalf("err %v, want signal: killed", err)
	}
	waitUntil(t, "no sleep "+arg+" left", func() bool { return proctest.Running(t, "sleep", arg) == 0 })
}

// A background job left running by a command that succeeded is killed, and
// then reaped like every orphan: no zombie stays behind.
func TestShellLeavesNothingBehind(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	r := startReaperWith(t, m)
	arg := proctest.SleepArg()
	var out bytes.Buffer
	if err := r.Shell(context.Background(), fmt.Sprintf("sleep %s & echo ok", arg), &out); err != nil || out.String() != "ok\n" {
		t.Fatalf("%q %v", out.String(), err)
	}
	waitUntil(t, "the background sleep killed and reaped", func() bool {
		return proctest.Running(t, "sleep", arg) == 0 && promtestutil.ToFloat64(m.orphans) >= 1
	})
	if n := proctest.Zombies(t, os.Getpid()); n != 0 {
		t.Fatalf("%d zombie children", n)
	}
}

// The bound applies to what the prober keeps, serves and logs, and is counted.
func TestProberBoundsOutput(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	p := NewProber(Probe{Cmd: "seq 100000; echo the-end; exit 1", URL: "/healthz"}, startReaperWith(t, m).Shell, time.Now, 10*time.Second, m, slog.New(slog.DiscardHandler))
	p.RunOnce(context.Background())
	r := p.Last()
	if len(r.Output) > MaxOutput+100 || !strings.HasSuffix(string(r.Output), "100000\nthe-end\n") || !strings.HasPrefix(string(r.Output), "[exec-healthz: output cut") {
		t.Fatalf("%d bytes kept: %.100q...", len(r.Output), r.Output)
	}
	if got := promtestutil.ToFloat64(m.cut.WithLabelValues("/healthz")); got != 1 {
		t.Fatalf("truncated = %v", got)
	}
}
