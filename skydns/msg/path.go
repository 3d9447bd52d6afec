package msg

import (
	"strings"
)

// DefaultPrefix is the etcd directory every SkyDNS key lives under.
const DefaultPrefix = "skydns"

// Path turns a DNS name into its etcd key: the labels reversed under the
// prefix, e.g. "x.web.default.svc.cluster.local." with prefix "skydns" is
// "/skydns/local/cluster/svc/default/web/x". Names are case-insensitive, so
// the key is lowercase.
func Path(name, prefix string) string {
	labels := Labels(name)
	reverse(labels)
	return "/" + prefix + "/" + strings.Join(labels, "/")
}

// Domain is the inverse of Path: "/skydns/local/cluster/svc" gives
// "svc.cluster.local.". The first segment (the prefix) is dropped.
func Domain(key string) string {
	segments := strings.Split(strings.Trim(key, "/"), "/")
	if len(segments) < 2 {
		return "."
	}
	labels := segments[1:]
	reverse(labels)
	return strings.Join(labels, ".") + "."
}

// Labels splits a name into lowercase labels, dropping the root.
func Labels(name string) []string {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	if name == "" {
		return nil
	}
	return strings.Split(name, ".")
}

// KeySegments splits a key below prefix into its segments in key order
// ("/skydns/local/cluster/x" gives [local cluster x]). ok is false for a key
// outside the prefix or with a segment that is not a DNS label (empty,
// longer than 63 bytes, or with a dot): no name maps to such a key, and a
// segment "web.default" would otherwise answer, and on delete hide, the
// name web.default.<rest> that other keys hold.
func KeySegments(key, prefix string) (segments []string, ok bool) {
	rest, found := strings.CutPrefix(key, "/"+prefix+"/")
	if !found || rest == "" {
		return nil, false
	}
	segments = strings.Split(rest, "/")
	for _, s := range segments {
		if !isLabel(s) {
			return nil, false
		}
	}
	return segments, true
}

// MaxLabelLen is the longest DNS label (RFC 1035 2.3.4).
const MaxLabelLen = 63

// isLabel reports whether s is one DNS label: 1 to 63 bytes, no dot.
func isLabel(s string) bool {
	return s != "" && len(s) <= MaxLabelLen && !strings.Contains(s, ".")
}

// IsWildcard reports whether a label matches any label in a lookup.
func IsWildcard(label string) bool {
	return label == "*" || label == "any"
}

func reverse(s []string) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}
