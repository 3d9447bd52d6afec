package logging

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/skypod/skypod/internal/flagutil"
)

func TestNew(t *testing.T) {
	tests := []struct {
		opts    Options
		wantErr bool
		want    string
	}{
		{Options{Level: "info", Format: "text"}, false, "level=INFO msg=hello"},
		{Options{Level: "debug", Format: "json"}, false, `"msg":"hello"`},
		{Options{Level: "loud", Format: "text"}, true, ""},
		{Options{Level: "info", Format: "xml"}, true, ""},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		log, err := New(&buf, tc.opts)
		if (err != nil) != tc.wantErr {
			t.Fatalf("%+v: err = %v", tc.opts, err)
		}
		if err != nil {
			continue
		}
		log.Debug("quiet")
		log.Info("hello")
		if !strings.Contains(buf.String(), tc.want) {
			t.Errorf("%+v: output %q lacks %q", tc.opts, buf.String(), tc.want)
		}
		if tc.opts.Level == "info" && strings.Contains(buf.String(), "quiet") {
			t.Errorf("debug line logged at info")
		}
	}
}

// Old manifests pass glog's flags, in Go's single-dash spelling too: each
// parses, -v means debug unless --log-level is given, and the rest are
// listed to be reported once.
func TestGlogFlags(t *testing.T) {
	tests := []struct {
		args        []string
		wantLevel   string
		wantIgnored []string
	}{
		{nil, "info", nil},
		{[]string{"-v=2"}, "debug", nil},
		{[]string{"--v=4", "--logtostderr"}, "debug", []string{"logtostderr=true"}},
		{[]string{"-v", "1", "--log-level=warn"}, "warn", nil},
		{[]string{"--log-level=error", "-v=3"}, "error", nil},
		{[]string{"-v=0", "--alsologtostderr=true", "--log_dir=/var/log", "--stderrthreshold=2"}, "info",
			[]string{"alsologtostderr=true", "log_dir=/var/log", "stderrthreshold=2"}},
		{[]string{"--vmodule=kube2sky=4"}, "info", []string{"vmodule=kube2sky=4"}},
	}
	for _, tc := range tests {
		o := DefaultOptions()
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		o.AddFlags(fs)
		if err := flagutil.Parse(fs, tc.args); err != nil {
			t.Fatalf("%q: %v", tc.args, err)
		}
		o.Resolve(fs)
		if o.Level != tc.wantLevel || !slices.Equal(o.Ignored, tc.wantIgnored) {
			t.Errorf("%q: level %q, ignored %q; want %q, %q", tc.args, o.Level, o.Ignored, tc.wantLevel, tc.wantIgnored)
		}
	}
}
