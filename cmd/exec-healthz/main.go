// Command exec-healthz runs a command every period and serves its last
// result for a liveness probe. The legacy pod runs it as
// exec-healthz -cmd="nslookup kubernetes.default.svc.cluster.local 127.0.0.1 >/dev/null" -port=8080
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/skypod/skypod/healthz"
	"github.com/skypod/skypod/internal/cmdmain"
)

func main() {
	cfg := healthz.NewConfig()
	fs := pflag.NewFlagSet("exec-healthz", pflag.ContinueOnError)
	cfg.AddFlags(fs)
	os.Exit(cmdmain.Main(cmdmain.Program{
		Name: "exec-healthz", Flags: fs, Finish: cfg.Finish, Log: &cfg.Log,
		Run: func(ctx context.Context, log *slog.Logger, reg *prometheus.Registry) error {
			return healthz.Run(ctx, cfg, log, reg)
		},
	}, os.Args[1:], os.Stdout, os.Stderr))
}
