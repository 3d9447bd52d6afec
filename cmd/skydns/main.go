// Command skydns serves DNS for a cluster domain from SkyDNS records in
// etcd. It accepts the flags of SkyDNS 2.5.2c, as the legacy kube-dns pod
// passed them: skydns -machines=http://127.0.0.1:4001 -addr=0.0.0.0:53
// -ns-rotate=false -domain=cluster.local.
package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/skypod/skypod/internal/cmdmain"
	"github.com/skypod/skypod/skydns"
)

func main() {
	// The image's file capability (internal/netcap) starts the binary in
	// the kernel's secure mode, where the Go runtime forces GOTRACEBACK=none:
	// a crash would say nothing. Back to the default; this only raises the level.
	debug.SetTraceback("single")
	cfg := skydns.NewConfig(os.Getenv)
	fs := pflag.NewFlagSet("skydns", pflag.ContinueOnError)
	cfg.AddFlags(fs)
	os.Exit(cmdmain.Main(cmdmain.Program{
		Name: "skydns", Flags: fs, Finish: cfg.Finish, Log: &cfg.Log,
		Run: func(ctx context.Context, log *slog.Logger, reg *prometheus.Registry) error {
			return skydns.Run(ctx, cfg, log, reg)
		},
	}, os.Args[1:], os.Stdout, os.Stderr))
}
