// Command kube2sky writes SkyDNS records for Kubernetes Services,
// Endpoints and Pods into etcd. It accepts kube2sky 1.2's flags; the legacy
// pod passes only --domain=cluster.local.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/skypod/skypod/internal/cmdmain"
	"github.com/skypod/skypod/internal/flagutil"
	"github.com/skypod/skypod/kube2sky"
)

func main() {
	cfg := kube2sky.NewConfig()
	fs := pflag.NewFlagSet("kube2sky", pflag.ContinueOnError)
	fs.SetNormalizeFunc(flagutil.UnderscoresAsDashes)
	cfg.AddFlags(fs)
	os.Exit(cmdmain.Main(cmdmain.Program{
		Name: "kube2sky", Flags: fs, Finish: cfg.Finish, Log: &cfg.Log,
		Run: func(ctx context.Context, log *slog.Logger, reg *prometheus.Registry) error {
			return kube2sky.Run(ctx, cfg, log, reg)
		},
	}, os.Args[1:], os.Stdout, os.Stderr))
}
