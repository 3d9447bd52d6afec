package flagutil

import (
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func newSet() (*pflag.FlagSet, *string, *bool, *time.Duration) {
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.SetNormalizeFunc(UnderscoresAsDashes)
	s := fs.String("machines", "", "")
	b := fs.Bool("ns-rotate", true, "")
	d := fs.Duration("kube-master-url-timeout", time.Second, "")
	return fs, s, b, d
}

func TestParseLegacySpellings(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		machines string
		rotate   bool
		dur      time.Duration
		rest     []string
	}{
		{"single dash with value", []string{"-machines=http://x:1", "-ns-rotate=false"}, "http://x:1", false, time.Second, nil},
		{"double dash", []string{"--machines=http://x:1", "--ns-rotate=false"}, "http://x:1", false, time.Second, nil},
		{"single dash, separate value", []string{"-machines", "http://y", "-ns-rotate"}, "http://y", true, time.Second, nil},
		{"value that looks like a flag", []string{"-machines", "-ns-rotate"}, "-ns-rotate", true, time.Second, nil},
		{"underscores", []string{"--kube_master_url_timeout=3s", "-kube_master_url_timeout", "4s"}, "", true, 4 * time.Second, nil},
		{"positional after --", []string{"--", "-machines=z"}, "", true, time.Second, []string{"-machines=z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs, s, b, d := newSet()
			if err := Parse(fs, tc.args); err != nil {
				t.Fatal(err)
			}
			if *s != tc.machines || *b != tc.rotate || *d != tc.dur {
				t.Fatalf("got %q %v %v", *s, *b, *d)
			}
			if len(fs.Args()) != len(tc.rest) {
				t.Fatalf("args = %v, want %v", fs.Args(), tc.rest)
			}
		})
	}
}

func TestParseUnknownFlagFails(t *testing.T) {
	for _, args := range [][]string{{"-nosuchflag=1"}, {"--nosuchflag"}, {"-ns-rotate=maybe"}} {
		fs, _, _, _ := newSet()
		if err := Parse(fs, args); err == nil {
			t.Errorf("%v: expected an error", args)
		}
	}
}
