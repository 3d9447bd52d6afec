// Package logging builds the one slog logger each binary uses, from the
// --log-level and --log-format flags.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"
)

// Options are the logging flags every binary shares.
type Options struct {
	Level  string // debug, info, warn or error
	Format string // text or json

	// Verbosity is glog's -v, which old manifests pass (kube2sky logged
	// retries at V(1), every record at V(2)). Above 0 it means debug,
	// unless --log-level says otherwise.
	Verbosity int
	// Ignored are the glog flags a manifest set that mean nothing here,
	// as "name=value": logs always go to stderr, the container's log.
	Ignored []string
	glog    glogFlags
}

// glogFlags hold what glog's other flags were given, to be reported.
type glogFlags struct {
	logToStderr, alsoLogToStderr bool
	logDir, stderrThreshold      string
	vmodule                      string
}

// glogIgnored are the glog flags accepted for old manifests and reported
// once, not acted on.
func glogIgnored() []string {
	return []string{"logtostderr", "alsologtostderr", "log_dir", "stderrthreshold", "vmodule"}
}

// DefaultOptions logs at info in logfmt-style text.
func DefaultOptions() Options {
	return Options{Level: "info", Format: "text"}
}

// AddFlags registers --log-level and --log-format, defaulting to o's
// values, and glog's flags as hidden ones, so a manifest written for the
// glog-logging originals starts instead of exiting on an unknown flag.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Level, "log-level", o.Level, "debug, info, warn or error")
	fs.StringVar(&o.Format, "log-format", o.Format, "text or json")
	fs.IntVarP(&o.Verbosity, "v", "v", 0, "glog's verbosity: above 0 logs at debug unless --log-level is given")
	fs.BoolVar(&o.glog.logToStderr, "logtostderr", false, "glog's; logs always go to stderr")
	fs.BoolVar(&o.glog.alsoLogToStderr, "alsologtostderr", false, "glog's; logs always go to stderr")
	fs.StringVar(&o.glog.logDir, "log_dir", "", "glog's; ignored: logs always go to stderr")
	fs.StringVar(&o.glog.stderrThreshold, "stderrthreshold", "", "glog's; ignored: --log-level sets what is logged")
	fs.StringVar(&o.glog.vmodule, "vmodule", "", "glog's; ignored")
	for _, name := range append([]string{"v"}, glogIgnored()...) {
		_ = fs.MarkHidden(name) // Only for old manifests; --help shows today's flags.
	}
}

// Resolve applies what the parsed glog flags mean, after fs has parsed:
// -v above 0 is debug unless --log-level was given, and the rest are
// listed in Ignored for the binary to report once.
func (o *Options) Resolve(fs *pflag.FlagSet) {
	if o.Verbosity > 0 && !fs.Changed("log-level") {
		o.Level = "debug"
	}
	for _, name := range glogIgnored() {
		if f := fs.Lookup(string(fs.GetNormalizeFunc()(fs, name))); f != nil && f.Changed {
			o.Ignored = append(o.Ignored, name+"="+f.Value.String())
		}
	}
}

// New returns a logger writing to w, or an error naming the bad option.
func New(w io.Writer, o Options) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.Level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", o.Level)
	}
	ho := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(o.Format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	default:
		return nil, fmt.Errorf("--log-format: %q is not one of text, json", o.Format)
	}
}
