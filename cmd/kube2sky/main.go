// Command kube2sky writes SkyDNS records for Kubernetes Services,
// Endpoints and Pods into etcd. It accepts kube2sky 1.2's flags; the legacy
// pod passes only --domain=cluster.local.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/skypod/skypod/internal/flagutil"
	"github.com/skypod/skypod/internal/httpserve"
	"github.com/skypod/skypod/internal/logging"
	"github.com/skypod/skypod/internal/version"
	"github.com/skypod/skypod/kube2sky"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	cfg := kube2sky.NewConfig()
	fs := pflag.NewFlagSet("kube2sky", pflag.ContinueOnError)
	fs.SetNormalizeFunc(flagutil.UnderscoresAsDashes)
	cfg.AddFlags(fs)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := flagutil.Parse(fs, args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "kube2sky:", err)
		return 2
	}
	if *showVersion {
		fmt.Println("kube2sky", version.Version)
		return 0
	}
	if err := cfg.Finish(); err != nil {
		fmt.Fprintln(os.Stderr, "kube2sky:", err)
		return 2
	}
	log, err := logging.New(os.Stderr, cfg.Log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kube2sky:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("starting", "version", version.Version)
	if err := kube2sky.Run(ctx, cfg, log, httpserve.NewRegistry()); err != nil {
		log.Error("kube2sky failed", "err", err)
		return 1
	}
	return 0
}
