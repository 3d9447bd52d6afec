package kube2sky

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// restartObjects are one of each kind of record owner: a ClusterIP service
// with named ports, a headless one whose endpoints have and lack a
// hostname, an ExternalName service and a pod.
func restartObjects(webPort string, withHeadless bool) []runtime.Object {
	web := clusterService("default", "web", "10.0.0.1")
	web.Spec.Ports = []v1.ServicePort{
		{Name: webPort, Port: 80, Protocol: v1.ProtocolTCP},
		{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP},
	}
	ext := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "ext", Namespace: "default", ResourceVersion: "1"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeExternalName, ExternalName: "www.example.com"}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", ResourceVersion: "1"},
		Status: v1.PodStatus{PodIP: "10.2.0.1"}}
	objs := []runtime.Object{web, ext, pod}
	if withHeadless {
		objs = append(objs, clusterService("default", "db", "None"), &v1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default", ResourceVersion: "1"},
			Subsets: []v1.EndpointSubset{{
				Addresses: []v1.EndpointAddress{{IP: "10.1.0.1", Hostname: "db-0"}, {IP: "10.1.0.2"}},
				Ports:     []v1.EndpointPort{{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}},
			}},
		})
	}
	return objs
}

// synced starts kube2sky over an empty store with objs and returns what it
// wrote: what etcd holds for them.
func synced(t *testing.T, objs []runtime.Object) Records {
	t.Helper()
	f := start(t, nil, objs...)
	f.quiet()
	data, _, _ := f.store.snapshot()
	return data
}

// Hand-written records under the prefix, outside what kube2sky owns.
var notKube2skys = Records{
	"/skydns/local/cluster/other/x":  `{"host":"10.9.9.9"}`,
	"/skydns/arpa/in-addr/192/0/2/1": `{"host":"printer.example.com."}`,
	"/skydns/config":                 `{"ttl":30}`,
}

// A restart diffs against what etcd holds, values included: nothing changed
// means no write at all, and a change while kube2sky was down costs exactly
// the keys it changes.
func TestRestartWritesOnlyTheDifference(t *testing.T) {
	const (
		webA   = "/skydns/local/cluster/svc/default/web/f488b1a2"
		webPTR = "/skydns/arpa/in-addr/10/0/0/1"
		stale  = "/skydns/local/cluster/svc/default/gone/b882ad2c"
	)
	unchanged := restartObjects("http", true)
	tests := []struct {
		name string
		// edit changes what etcd holds before the restart.
		edit  func(Records)
		after []runtime.Object
	}{
		{"nothing changed", nil, unchanged},
		{"hand-written records beside kube2sky's", func(r Records) { maps.Copy(r, notKube2skys) }, unchanged},
		{"values in another field order and spacing", func(r Records) {
			r[webA] = `{ "ttl": 30, "weight": 10, "priority": 10, "host": "10.0.0.1" }`
			r[webPTR] = `{"ttl":30,"host":"web.default.svc.cluster.local.","priority":10,"weight":10,"unknown":1}`
		}, unchanged},
		{"a value that means something else", func(r Records) { r[webA] = `{"host":"10.0.0.1","ttl":60}` }, unchanged},
		{"a value that is not a record", func(r Records) { r[webA] = `not json` }, unchanged},
		{"a record of a service deleted while kube2sky was down", func(r Records) {
			r[stale] = `{"host":"1.2.3.4","priority":10,"weight":10,"ttl":30}`
		}, unchanged},
		{"a port renamed", nil, restartObjects("web", true)},
		{"a headless service deleted", nil, restartObjects("http", false)},
		{"a port renamed and a service deleted", nil, restartObjects("web", false)},
	}
	before := synced(t, unchanged)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inEtcd := maps.Clone(before)
			if tc.edit != nil {
				tc.edit(inEtcd)
			}
			want := synced(t, tc.after)
			store := &memStore{data: maps.Clone(inEtcd)}
			// A slow first list: a worker that planned before the registry
			// held etcd's records would write now.
			store.afterList = func() { store.afterList = nil; time.Sleep(50 * time.Millisecond) }
			f := startWith(t, store, tc.after...)
			f.quiet()
			data, _, _ := f.store.snapshot()
			f.store.mu.Lock()
			order := slices.Clone(f.store.order)
			f.store.mu.Unlock()
			if wantOps := restartOps(inEtcd, want); !slices.Equal(sorted(order), wantOps) {
				t.Errorf("restart wrote %v, want exactly %v", sorted(order), wantOps)
			}
			for k, v := range data {
				if _, theirs := notKube2skys[k]; !theirs && !servesSame(v, want[k]) {
					t.Errorf("after the restart %s = %q, want %q", k, v, want[k])
				}
			}
			for k, v := range notKube2skys {
				if _, edited := inEtcd[k]; edited && data[k] != v {
					t.Errorf("hand-written %s = %q after the restart, want it untouched", k, data[k])
				}
			}
		})
	}
}

// restartOps are the writes that turn inEtcd into want: a put of each key
// whose value means something else or is missing, a delete of each owned key
// no longer wanted. Hand-written keys are neither.
func restartOps(inEtcd, want Records) []string {
	var ops []string
	for k, v := range want {
		if old, ok := inEtcd[k]; !ok || !servesSame(old, v) {
			ops = append(ops, "put "+k)
		}
	}
	for k := range inEtcd {
		if _, ok := want[k]; !ok && notKube2skys[k] == "" {
			ops = append(ops, "delete "+k)
		}
	}
	return sorted(ops)
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.SortFunc(out, strings.Compare)
	if out == nil {
		out = []string{}
	}
	return out
}

// The PTR of an IP two headless services select stays with the service
// etcd says holds it: a restart neither hands it over nor rewrites it,
// whichever service a worker picks up first.
func TestRestartKeepsTheHolderOfASharedPTR(t *testing.T) {
	var objs []runtime.Object
	for _, name := range []string{"a", "b"} {
		objs = append(objs, clusterService("default", name, "None"), &v1.Endpoints{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: "1"},
			Subsets:    []v1.EndpointSubset{{Addresses: []v1.EndpointAddress{{IP: "10.1.0.5", Hostname: "pet"}}}},
		})
	}
	const ptr = "/skydns/arpa/in-addr/10/1/0/5"
	before := synced(t, objs)
	for range 5 {
		f := start(t, before, objs...)
		f.quiet()
		data, applies, _ := f.store.snapshot()
		if applies != 0 || data[ptr] != before[ptr] {
			t.Fatalf("restart: %d transactions, PTR %s, was %s", applies, data[ptr], before[ptr])
		}
	}
}

// servesSame reports whether inEtcd serves what want, a value kube2sky
// writes, does: its canonical value is want.
func servesSame(inEtcd, want string) bool { return canonical(inEtcd) == want }
