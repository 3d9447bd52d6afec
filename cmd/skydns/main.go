// Command skydns serves DNS for a cluster domain from SkyDNS records in
// etcd. It accepts the flags of SkyDNS 2.5.2c, as the legacy kube-dns pod
// passed them: skydns -machines=http://127.0.0.1:4001 -addr=0.0.0.0:53
// -ns-rotate=false -domain=cluster.local.
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
	"github.com/skypod/skypod/skydns"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	cfg := skydns.NewConfig(os.Getenv)
	fs := pflag.NewFlagSet("skydns", pflag.ContinueOnError)
	cfg.AddFlags(fs)
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := flagutil.Parse(fs, args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "skydns:", err)
		return 2
	}
	if *showVersion {
		fmt.Println("skydns", version.Version)
		return 0
	}
	if err := cfg.Finish(); err != nil {
		fmt.Fprintln(os.Stderr, "skydns:", err)
		return 2
	}
	log, err := logging.New(os.Stderr, cfg.Log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "skydns:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Info("starting", "version", version.Version)
	if err := skydns.Run(ctx, cfg, log, httpserve.NewRegistry()); err != nil {
		log.Error("skydns failed", "err", err)
		return 1
	}
	return 0
}
