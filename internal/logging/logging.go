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
}

// DefaultOptions logs at info in logfmt-style text.
func DefaultOptions() Options {
	return Options{Level: "info", Format: "text"}
}

// AddFlags registers --log-level and --log-format, defaulting to o's values.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Level, "log-level", o.Level, "debug, info, warn or error")
	fs.StringVar(&o.Format, "log-format", o.Format, "text or json")
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
