// Package healthz is exec-healthz: it runs shell commands every period,
// keeps each one's last result, and serves it over HTTP for the kubelet's
// liveness probe (legacy-behaviour.md §3).
package healthz

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/skypod/skypod/internal/logging"
)

// Config holds exec-healthz's flags: those of image 1.0 (-cmd, -port,
// -period, -latency), -quiet (1.1), the repeated --cmd/--url pairs of the
// multi-probe image, and the new ones.
type Config struct {
	Cmds    []string
	URLs    []string
	Port    int
	Period  time.Duration
	Latency time.Duration
	Quiet   bool
	Timeout time.Duration
	Log     logging.Options
}

// Probe is one command and the path that serves its result.
type Probe struct {
	Cmd string
	URL string
}

// NewConfig returns the legacy defaults.
func NewConfig() *Config {
	return &Config{Port: 8080, Period: 2 * time.Second, Latency: 30 * time.Second, Timeout: 10 * time.Second, Log: logging.DefaultOptions()}
}

// AddFlags registers the flags.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&c.Cmds, "cmd", nil, `command run through "sh -c" (repeatable; default "echo healthz")`)
	fs.StringArrayVar(&c.URLs, "url", nil, `path serving the result of the --cmd in the same position (repeatable; default /healthz)`)
	fs.IntVar(&c.Port, "port", c.Port, "port to serve on, all addresses")
	fs.DurationVar(&c.Period, "period", c.Period, "time between runs of each command")
	fs.DurationVar(&c.Latency, "latency", c.Latency, "oldest result still counted as current")
	fs.BoolVar(&c.Quiet, "quiet", c.Quiet, "log only failures")
	fs.DurationVar(&c.Timeout, "timeout", c.Timeout, "a command still running after this is killed and counts as failed")
	c.Log.AddFlags(fs)
}

// Finish validates, and quiets the log to warnings with -quiet.
func (c *Config) Finish() error {
	if len(c.Cmds) == 0 {
		c.Cmds = []string{"echo healthz"}
	}
	if len(c.URLs) == 0 && len(c.Cmds) == 1 {
		c.URLs = []string{"/healthz"}
	}
	if len(c.URLs) != len(c.Cmds) {
		return fmt.Errorf("--cmd and --url pair by position: %d commands, %d urls", len(c.Cmds), len(c.URLs))
	}
	seen := map[string]bool{}
	for _, u := range c.URLs {
		if !strings.HasPrefix(u, "/") || u == "/metrics" || seen[u] {
			return fmt.Errorf("--url: %q must be a distinct path other than /metrics", u)
		}
		seen[u] = true
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("--port: %d is not a port", c.Port)
	}
	if c.Period <= 0 || c.Latency <= 0 || c.Timeout <= 0 {
		return errors.New("--period, --latency and --timeout must be positive")
	}
	if c.Quiet && c.Log.Level == "info" {
		c.Log.Level = "warn"
	}
	return nil
}

// Probes pairs the commands with their paths.
func (c *Config) Probes() []Probe {
	out := make([]Probe, len(c.Cmds))
	for i := range c.Cmds {
		out[i] = Probe{Cmd: c.Cmds[i], URL: c.URLs[i]}
	}
	return out
}
