package kube2sky

import (
	"fmt"
	"strings"
	"unicode/utf8"

	v1 "k8s.io/api/core/v1"

	"github.com/skypod/skypod/skydns/msg"
)

// Why a record is left out: the reason label of
// kube2sky_skipped_records_total.
const (
	// skipExternalNameIP: an externalName that parses as an IP address.
	skipExternalNameIP = "externalname_ip"
	// skipLabel: a label that would not be one key segment skydns accepts.
	skipLabel = "invalid_label"
	// skipValue: a value skydns would refuse, such as an externalName with
	// a label over 63 bytes, which the API server allows, or one that does
	// not read back as written (a field that is not UTF-8).
	skipValue = "invalid_value"
)

// Skip is a record left out because skydns could not serve it as meant.
type Skip struct {
	Name   string // The record's DNS name, as far as it could be built.
	Reason string // One of the skip* reasons.
	Err    error
}

// recordSet collects one owner's records, and the ones it leaves out.
type recordSet struct {
	Namer
	records Records
	skipped []Skip
}

func (n Namer) newSet() *recordSet { return &recordSet{Namer: n, records: Records{}} }

// child is <labels...>.<parent>, labels leaf first: the one place a name is
// made of what Kubernetes objects say. Each label must be one key segment
// as skydns reads keys (msg.KeySegments). With a dot or a slash it would
// become two segments, naming another service's record in a directory
// kube2sky takes for that service's; empty or over 63 bytes (a 63-byte
// port name's "_" label) it names nothing skydns serves. Not UTF-8, it
// would name one host in the key and another in the value: JSON writes
// each invalid byte as U+FFFD, so an SRV record would point elsewhere and
// the value would not read back as written.
func child(parent string, labels ...string) (string, error) {
	for _, l := range labels {
		segments, ok := msg.KeySegments("/"+msg.DefaultPrefix+"/"+l, msg.DefaultPrefix)
		if !ok || len(segments) != 1 || !utf8.ValidString(l) {
			return "", fmt.Errorf("%q is not one DNS label (1-%d bytes of UTF-8, no dot or slash)", l, msg.MaxLabelLen)
		}
	}
	return strings.Join(labels, ".") + "." + parent, nil
}

// name is child(parent, labels...), or false when a label cannot be one:
// the record it was for is then left out, and noted.
func (rs *recordSet) name(parent string, labels ...string) (string, bool) {
	name, err := child(parent, labels...)
	if err != nil {
		rs.skip(strings.Join(labels, ".")+"."+parent, skipLabel, err)
		return "", false
	}
	return name, true
}

// serviceName is the service's <name>.<ns>.svc.<domain>. Only a fake API
// server lets either be other than one label.
func (rs *recordSet) serviceName(svc *v1.Service) (string, bool) {
	return rs.name("svc."+rs.Domain, svc.Name, svc.Namespace)
}

// add puts value at <labels...>.<parent> and returns that name, or false
// when the record was left out.
func (rs *recordSet) add(value, parent string, labels ...string) (string, bool) {
	name, ok := rs.name(parent, labels...)
	return name, ok && rs.put(name, value)
}

// put writes value at name, unless skydns would refuse the value
// (msg.Unmarshal): a record it skips is one kube2sky should not write.
// Nor is one that does not read back as written: a field that was not
// UTF-8 (an ExternalName, a hostname) JSON wrote as U+FFFD, so the record
// would name another host than the object does, and its value would
// never equal what a restart finds in etcd (canonical).
func (rs *recordSet) put(name, value string) bool {
	key := msg.Path(name, rs.Prefix)
	switch c, err := reencode(key, value); {
	case err != nil:
		rs.skip(name, skipValue, err)
		return false
	case c != value:
		rs.skip(name, skipValue, fmt.Errorf("value %s does not read back as written (a field not UTF-8?)", value))
		return false
	}
	rs.records[key] = value
	return true
}

func (rs *recordSet) skip(name, reason string, err error) {
	rs.skipped = append(rs.skipped, Skip{Name: name, Reason: reason, Err: err})
}
