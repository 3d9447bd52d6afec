// Package cmdmain is the start-up every binary shares: parse the legacy
// flag spellings, validate, build the logger, run until SIGINT or SIGTERM,
// and turn the outcome into an exit code (2 for bad flags, 1 for failure).
package cmdmain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/skypod/skypod/internal/flagutil"
	"github.com/skypod/skypod/internal/httpserve"
	"github.com/skypod/skypod/internal/logging"
	"github.com/skypod/skypod/internal/version"
)

// Program is one binary's part in start-up.
type Program struct {
	Name   string
	Flags  *pflag.FlagSet   // With the program's flags registered.
	Finish func() error     // Validates and normalises the parsed flags.
	Log    *logging.Options // Filled by the flags.
	Run    func(ctx context.Context, log *slog.Logger, reg *prometheus.Registry) error
}

// Main runs p with args, writing errors to stderr, and returns the exit code.
func Main(p Program, args []string, stdout, stderr io.Writer) int {
	showVersion := p.Flags.Bool("version", false, "print the version and exit")
	if err := flagutil.Parse(p.Flags, args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, p.Name, version.Version)
		return 0
	}
	p.Log.Resolve(p.Flags)
	if err := p.Finish(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return 2
	}
	log, err := logging.New(stderr, *p.Log)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("starting", "version", version.Version)
	if len(p.Log.Ignored) > 0 {
		log.Info("glog flags accepted and ignored: logs go to stderr at --log-level", "flags", p.Log.Ignored)
	}
	if err := p.Run(ctx, log, httpserve.NewRegistry()); err != nil {
		log.Error(p.Name+" failed", "err", err)
		return 1
	}
	return 0
}
