// Package flagutil lets pflag accept the flag spellings the legacy pod
// manifests use: Go-style single-dash long flags ("-domain=x") and, where a
// binary used underscores ("--kube_master_url"), underscores for dashes.
package flagutil

import (
	"strings"

	"github.com/spf13/pflag"
)

// UnderscoresAsDashes is a pflag normalizer: "--etcd_mutation_timeout" and
// "--etcd-mutation-timeout" name the same flag.
func UnderscoresAsDashes(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	return pflag.NormalizedName(strings.ReplaceAll(name, "_", "-"))
}

// Parse parses args after rewriting every single-dash long flag that fs
// knows ("-machines=x", "-ns-rotate") to its double-dash form. pflag on its
// own reads "-machines" as the shorthands -m -a -c..., which is not what a
// manifest written for Go's flag package means.
func Parse(fs *pflag.FlagSet, args []string) error {
	return fs.Parse(doubleDash(fs, args))
}

func doubleDash(fs *pflag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	takesValue := false // The previous arg was a flag whose value is the next arg.
	for i, arg := range args {
		if arg == "--" {
			return append(out, args[i:]...)
		}
		if takesValue {
			takesValue = false
			out = append(out, arg)
			continue
		}
		name, hasValue, isFlag := flagName(arg)
		if !isFlag {
			out = append(out, arg)
			continue
		}
		f := fs.Lookup(string(fs.GetNormalizeFunc()(fs, name)))
		if f == nil {
			out = append(out, arg) // Let pflag report it, or treat it as shorthand.
			continue
		}
		if !strings.HasPrefix(arg, "--") {
			arg = "-" + arg
		}
		takesValue = !hasValue && f.NoOptDefVal == ""
		out = append(out, arg)
	}
	return out
}

// flagName returns the name in "-name", "--name" or "-name=value".
func flagName(arg string) (name string, hasValue, ok bool) {
	if len(arg) < 2 || arg[0] != '-' {
		return "", false, false
	}
	trimmed := strings.TrimLeft(arg, "-")
	if len(arg)-len(trimmed) > 2 || trimmed == "" {
		return "", false, false
	}
	name, _, hasValue = strings.Cut(trimmed, "=")
	if len(name) < 2 && len(arg)-len(trimmed) == 1 {
		return "", false, false // A real one-letter shorthand.
	}
	return name, hasValue, true
}
