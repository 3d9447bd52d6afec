package kube2sky

import (
	"maps"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var namer = Namer{Domain: "cluster.local.", Prefix: "skydns"}

const base = "/skydns/local/cluster/svc/default/testservice/"

func service(clusterIP string, ports ...v1.ServicePort) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "testservice", Namespace: "default"},
		Spec:       v1.ServiceSpec{ClusterIP: clusterIP, Ports: ports},
	}
}

func port(name string, p int32) v1.ServicePort {
	return v1.ServicePort{Name: name, Port: p, Protocol: v1.ProtocolTCP}
}

func subset(ports []v1.EndpointPort, ips ...string) v1.EndpointSubset {
	s := v1.EndpointSubset{Ports: ports}
	for _, ip := range ips {
		s.Addresses = append(s.Addresses, v1.EndpointAddress{IP: ip})
	}
	return s
}

func epPort(name string, p int32) v1.EndpointPort {
	return v1.EndpointPort{Name: name, Port: p, Protocol: v1.ProtocolTCP}
}

func endpoints(subsets ...v1.EndpointSubset) *v1.Endpoints {
	return &v1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "testservice", Namespace: "default"}, Subsets: subsets}
}

func mustRecords(t *testing.T, svc *v1.Service, eps *v1.Endpoints) Records {
	t.Helper()
	r, skipped, err := namer.ServiceRecords(svc, eps)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("err %v, skipped %v", err, skipped)
	}
	return r
}

// under returns the values of keys directly under dir.
func under(r Records, dir string) []string {
	var out []string
	for k, v := range r {
		if rest, ok := strings.CutPrefix(k, dir); ok && !strings.Contains(rest, "/") {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// The legacy kube2sky scenarios of legacy-behaviour.md §5.
func TestLegacyScenarios(t *testing.T) {
	unnamed80 := []v1.EndpointPort{{Port: 80, Protocol: v1.ProtocolTCP}}
	unnamed8080 := []v1.EndpointPort{{Port: 8080, Protocol: v1.ProtocolTCP}}
	http12 := []v1.EndpointPort{epPort("http1", 80), epPort("http2", 81)}
	https := []v1.EndpointPort{epPort("https", 443)}
	headless := service("None", v1.ServicePort{Port: 0})
	srvValue := func(target string, p string) string {
		return `{"host":"` + target + `","port":` + p + `,"priority":10,"weight":10,"ttl":30}`
	}
	tests := []struct {
		name  string
		svc   *v1.Service
		eps   *v1.Endpoints
		keys  int
		check func(t *testing.T, r Records)
	}{
		{"K1 headless, two subsets of unnamed ports", headless,
			endpoints(subset(unnamed80, "10.0.0.1", "10.0.0.2"), subset(unnamed8080, "10.0.0.3", "10.0.0.4")), 4, nil},
		{"K2 headless, named ports", headless,
			endpoints(subset(http12, "10.0.0.1", "10.0.0.2"), subset(https, "10.0.0.3", "10.0.0.4")), 10,
			func(t *testing.T, r Records) {
				for p, want := range map[string]string{"_http1": "80", "_http2": "81", "_https": "443"} {
					vals := under(r, base+"_tcp/"+p+"/")
					if len(vals) != 2 || !strings.Contains(vals[0], `"port":`+want+",") {
						t.Errorf("%s: %v", p, vals)
					}
				}
				// Each SRV targets the endpoint's own name, its hash label.
				if got := r[base+"_tcp/_http1/d8321f45"]; got != srvValue("d8321f45.testservice.default.svc.cluster.local.", "80") {
					t.Errorf("SRV of 10.0.0.2: %s", got)
				}
			}},
		{"K2b endpoints cut to the first subset", headless, endpoints(subset(http12, "10.0.0.1", "10.0.0.2")), 6, nil},
		{"K3 one subset", headless, endpoints(subset(unnamed80, "10.0.0.1", "10.0.0.2")), 2, nil},
		{"K4 headless before its endpoints", headless, nil, 0, nil},
		{"K5 ClusterIP, unnamed port", service("1.2.3.4", v1.ServicePort{Port: 80, Protocol: v1.ProtocolTCP}), nil, 1,
			func(t *testing.T, r Records) {
				if got := r[base+"b882ad2c"]; got != `{"host":"1.2.3.4","priority":10,"weight":10,"ttl":30}` {
					t.Errorf("A record: %q", got)
				}
			}},
		{"K6 ClusterIP 0.0.0.0", service("0.0.0.0", v1.ServicePort{Port: 80, Protocol: v1.ProtocolTCP}), nil, 1,
			func(t *testing.T, r Records) {
				if vals := under(r, base); len(vals) != 1 || !strings.Contains(vals[0], `"host":"0.0.0.0"`) {
					t.Errorf("%v", vals)
				}
			}},
		{"K8 ClusterIP, port http1", service("1.2.3.4", port("http1", 80)), nil, 2,
			func(t *testing.T, r Records) {
				if got := r[base+"_tcp/_http1/b882ad2c"]; got != srvValue("testservice.default.svc.cluster.local.", "80") {
					t.Errorf("SRV: %q", got)
				}
			}},
		{"K8 renamed to http2", service("1.2.3.4", port("http2", 80)), nil, 2,
			func(t *testing.T, r Records) {
				if len(under(r, base+"_tcp/_http2/")) != 1 || len(under(r, base+"_tcp/_http1/")) != 0 {
					t.Errorf("%v", r)
				}
			}},
		{"named port without protocol gets no SRV", service("1.2.3.4", v1.ServicePort{Name: "x", Port: 80}), nil, 1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRecords(t, tc.svc, tc.eps)
			if len(r) != tc.keys {
				t.Fatalf("%d keys, want %d: %v", len(r), tc.keys, slices.Sorted(maps.Keys(r)))
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestPodRecords(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "testPod", Namespace: "default"}}
	if r, _ := namer.PodRecords(pod); len(r) != 0 {
		t.Fatalf("K9 no IP: %v", r)
	}
	pod.Status.PodIP = "1.2.3.4"
	r, _ := namer.PodRecords(pod)
	if got := r["/skydns/local/cluster/pod/default/1-2-3-4/b882ad2c"]; got != `{"host":"1.2.3.4","priority":10,"weight":10,"ttl":30}` || len(r) != 1 {
		t.Fatalf("K9b: %v", r)
	}
	pod.Status.PodIP = "4.3.2.1"
	if r, _ := namer.PodRecords(pod); len(r) != 1 || len(under(r, "/skydns/local/cluster/pod/default/4-3-2-1/")) != 1 {
		t.Fatalf("K9d: %v", r)
	}
	pod.Status.PodIPs = []v1.PodIP{{IP: "4.3.2.1"}, {IP: "2001:db8::7"}}
	if r, _ := namer.PodRecords(pod); len(under(r, "/skydns/local/cluster/pod/default/2001-db8--7/")) != 1 || len(r) != 2 {
		t.Fatalf("dual-stack pod: %v", r)
	}
	if got := namer.PodKey("default", "1.2.3.4"); got != "/skydns/local/cluster/pod/default/1-2-3-4" {
		t.Fatalf("PodKey: %s", got)
	}
}

func TestNames(t *testing.T) {
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "name", Namespace: "ns"}}
	if got, ok := namer.newSet().serviceName(svc); !ok || got != "name.ns.svc.cluster.local." {
		t.Errorf("K10 ServiceName: %s", got)
	}
	if got := dashedIP("1.2.3.4"); got != "1-2-3-4" {
		t.Errorf("K10 dashedIP: %s", got)
	}
	if namer.ServicesKey() != "/skydns/local/cluster/svc/" || namer.PodsKey() != "/skydns/local/cluster/pod/" || namer.ReverseKey() != "/skydns/arpa/" {
		t.Errorf("owned subtrees: %s %s %s", namer.ServicesKey(), namer.PodsKey(), namer.ReverseKey())
	}
}

// The records of the DNS specification 1.1.0 (dns-spec-cases.md).
func TestSpecRecords(t *testing.T) {
	dual := service("10.3.0.1", port("https", 443))
	dual.Spec.ClusterIPs = []string{"10.3.0.1", "2001:db8::1"}
	r := mustRecords(t, dual, nil)
	if vals := under(r, base); len(vals) != 2 || !slices.Contains(vals, `{"host":"2001:db8::1","priority":10,"weight":10,"ttl":30}`) {
		t.Errorf("S3 dual-stack ClusterIPs: %v", vals)
	}
	if vals := under(r, base+"_tcp/_https/"); len(vals) != 1 {
		t.Errorf("S4 one SRV per named port: %v", vals)
	}
	rev, _, _ := namer.ReverseRecords(dual, nil)
	if got := rev["/skydns/arpa/in-addr/10/3/0/1"]; !strings.Contains(got, `"host":"testservice.default.svc.cluster.local."`) {
		t.Errorf("S6 PTR: %v", rev)
	}
	s7 := "/skydns/arpa/ip6/2/0/0/1/0/d/b/8/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/1"
	if _, ok := rev[s7]; !ok {
		t.Errorf("S7 ip6.arpa PTR: %v", slices.Sorted(maps.Keys(rev)))
	}

	hl := service("None", port("https", 443))
	eps := endpoints(v1.EndpointSubset{
		Addresses:         []v1.EndpointAddress{{IP: "10.3.0.100", Hostname: "my-pet"}, {IP: "10.3.0.101"}, {IP: "10.3.0.102", Hostname: "Not_A_Label"}},
		NotReadyAddresses: []v1.EndpointAddress{{IP: "10.3.0.200"}},
		Ports:             []v1.EndpointPort{epPort("https", 443)},
	})
	r = mustRecords(t, hl, eps)
	if got := r[base+"my-pet"]; got != `{"host":"10.3.0.100","priority":10,"weight":10,"ttl":30}` {
		t.Errorf("S10 hostname record: %v", slices.Sorted(maps.Keys(r)))
	}
	if got := r[base+"_tcp/_https/my-pet"]; !strings.Contains(got, `"host":"my-pet.testservice.default.svc.cluster.local."`) {
		t.Errorf("S12 SRV to the hostname: %q", got)
	}
	if len(under(r, base)) != 3 {
		t.Errorf("S8 one record per ready address, not-ready ones left out: %v", under(r, base))
	}
	hl.Spec.PublishNotReadyAddresses = true
	if r := mustRecords(t, hl, eps); len(under(r, base)) != 4 {
		t.Errorf("publishNotReadyAddresses: %v", under(r, base))
	}
	rev, _, _ = namer.ReverseRecords(hl, eps)
	if got := rev["/skydns/arpa/in-addr/10/3/0/100"]; !strings.Contains(got, `"host":"my-pet.testservice.default.svc.cluster.local."`) || len(rev) != 4 ||
		rev["/skydns/arpa/in-addr/10/3/0/200"] == "" {
		t.Errorf("S13 PTR for each published endpoint (the one with a hostname by it), the not-ready one too: %v", rev)
	}

	eps.Annotations = map[string]string{hostnamesAnnotation: `{"10.3.0.101":{"HostName":"legacy-pet"}}`}
	if r := mustRecords(t, hl, eps); r[base+"legacy-pet"] == "" {
		t.Errorf("1.2 hostnames-map annotation: %v", slices.Sorted(maps.Keys(r)))
	}
	eps.Annotations[hostnamesAnnotation] = `{"10.3.0.101":`
	if _, _, err := namer.ServiceRecords(hl, eps); err == nil {
		t.Errorf("a malformed annotation must be an error")
	}

	ext := service("")
	ext.Spec.Type = v1.ServiceTypeExternalName
	ext.Spec.ExternalName = "www.example.com"
	if r := mustRecords(t, ext, nil); len(r) != 1 || r[strings.TrimSuffix(base, "/")] != `{"host":"www.example.com","priority":10,"weight":10,"ttl":30}` {
		t.Errorf("S14 ExternalName, a leaf at the service name: %v", r)
	}
	if r := mustRecords(t, service("None"), endpoints()); len(r) != 0 {
		t.Errorf("S9 headless with no endpoints writes nothing (NXDOMAIN): %v", r)
	}
	if got := namer.DNSVersion()["/skydns/local/cluster/dns-version"]; got != `{"text":"1.1.0","ttl":28800}` {
		t.Errorf("S1 dns-version: %v", namer.DNSVersion())
	}
}

// S13 without a hostname: the PTR of a ready headless endpoint names the
// same hash-labelled name its A/AAAA record sits at and its SRV targets.
func TestHeadlessPTRWithoutHostname(t *testing.T) {
	hl := service("None", port("https", 443))
	tests := []struct {
		name, ip, reverseKey string
	}{
		{"v4", "10.3.0.101", "/skydns/arpa/in-addr/10/3/0/101"},
		{"v6", "2001:db8::65", "/skydns/arpa/ip6/2/0/0/1/0/d/b/8/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/6/5"},
		{"invalid hostname", "10.3.0.102", "/skydns/arpa/in-addr/10/3/0/102"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := v1.EndpointAddress{IP: tc.ip}
			if tc.name == "invalid hostname" {
				addr.Hostname = "Not_A_Label"
			}
			eps := endpoints(v1.EndpointSubset{Addresses: []v1.EndpointAddress{addr}, Ports: []v1.EndpointPort{epPort("https", 443)}})
			r := mustRecords(t, hl, eps)
			addrValue := `{"host":"` + tc.ip + `","priority":10,"weight":10,"ttl":30}`
			var label string
			for k, v := range r {
				if rest, ok := strings.CutPrefix(k, base); ok && !strings.Contains(rest, "/") && v == addrValue {
					label = rest
				}
			}
			if label == "" || strings.Trim(label, "0123456789abcdef") != "" {
				t.Fatalf("no hash-labelled address record for %s: %v", tc.ip, r)
			}
			target := label + ".testservice.default.svc.cluster.local."
			if got := r[base+"_tcp/_https/"+label]; !strings.Contains(got, `"host":"`+target+`"`) {
				t.Errorf("SRV: %q, want a target of %s", got, target)
			}
			rev, _, err := namer.ReverseRecords(hl, eps)
			if err != nil {
				t.Fatal(err)
			}
			want := `{"host":"` + target + `","priority":10,"weight":10,"ttl":30}`
			if got := rev[tc.reverseKey]; got != want || len(rev) != 1 {
				t.Errorf("PTR: %v, want %s = %s", rev, tc.reverseKey, want)
			}
		})
	}
}

// A headless endpoint's PTR follows its A/AAAA record: the ready addresses,
// and the not-ready ones only when the service publishes them
// (publishNotReadyAddresses, or the tolerate-unready annotation).
func TestHeadlessPTRsFollowAddressRecords(t *testing.T) {
	eps := endpoints(v1.EndpointSubset{
		Addresses:         []v1.EndpointAddress{{IP: "10.3.0.100"}},
		NotReadyAddresses: []v1.EndpointAddress{{IP: "10.3.0.200"}},
		Ports:             []v1.EndpointPort{epPort("https", 443)},
	})
	tests := []struct {
		name    string
		publish func(*v1.Service)
		want    []string // IPs with an A record, and a PTR.
	}{
		{"ready only", func(*v1.Service) {}, []string{"10.3.0.100"}},
		{"publishNotReadyAddresses", func(s *v1.Service) { s.Spec.PublishNotReadyAddresses = true }, []string{"10.3.0.100", "10.3.0.200"}},
		{"tolerate-unready annotation", func(s *v1.Service) {
			s.Annotations = map[string]string{tolerateUnreadyAnnotation: "true"}
		}, []string{"10.3.0.100", "10.3.0.200"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hl := service("None", port("https", 443))
			tc.publish(hl)
			var withA []string
			for k, v := range mustRecords(t, hl, eps) {
				if rest, _ := strings.CutPrefix(k, base); !strings.Contains(rest, "/") {
					withA = append(withA, strings.Split(strings.Split(v, `"host":"`)[1], `"`)[0])
				}
			}
			rev, _, err := namer.ReverseRecords(hl, eps)
			if err != nil {
				t.Fatal(err)
			}
			var withPTR []string
			for _, ip := range []string{"10.3.0.100", "10.3.0.200"} {
				if rev["/skydns/arpa/in-addr/"+strings.ReplaceAll(ip, ".", "/")] != "" {
					withPTR = append(withPTR, ip)
				}
			}
			slices.Sort(withA)
			if !slices.Equal(withA, tc.want) || !slices.Equal(withPTR, tc.want) || len(rev) != len(tc.want) {
				t.Errorf("A records for %v, PTRs for %v (%v); want both for %v", withA, withPTR, rev, tc.want)
			}
		})
	}
}

// Records skydns could not serve as kube2sky means them are left out, each
// noted with its reason, and their neighbours are still written. "api"
// cases are objects a real API server accepts; the others only a fake (or
// an older server) can hand kube2sky.
func TestRecordsSkydnsCannotServeAreSkipped(t *testing.T) {
	const svcName = "testservice.default.svc.cluster.local."
	long := strings.Repeat("p", 63) // A valid port name; with its "_" a 64-byte label.
	external := func(target string) *v1.Service {
		s := service("")
		s.Spec.Type, s.Spec.ExternalName = v1.ServiceTypeExternalName, target
		return s
	}
	named := func(ns, name string) *v1.Service {
		s := service("1.2.3.4", port("http", 80))
		s.Namespace, s.Name = ns, name
		return s
	}
	headless := service("None")
	twoPorts := []v1.EndpointPort{epPort(long, 80), epPort("http", 81)}
	tests := []struct {
		name    string
		svc     *v1.Service
		eps     *v1.Endpoints
		keys    []string // Every key written.
		skipped []string // "<reason> <name>", in order.
	}{
		{"api: ExternalName 169.254.169.254", external("169.254.169.254"), nil, nil,
			[]string{"externalname_ip " + svcName}},
		{"api: ExternalName IP with the root dot", external("10.0.0.1."), nil, nil,
			[]string{"externalname_ip " + svcName}},
		{"ExternalName IPv6 (the API server refuses colons)", external("2001:db8::1"), nil, nil,
			[]string{"externalname_ip " + svcName}},
		{"api: ExternalName that only starts like an IP is a name", external("10.0.0.1.example.com"), nil,
			[]string{strings.TrimSuffix(base, "/")}, nil},
		{"api: ExternalName with a 64-byte label", external(strings.Repeat("a", 64) + ".example.com"), nil, nil,
			[]string{"invalid_value " + svcName}},
		{"api: ClusterIP port named with 63 bytes", service("1.2.3.4", port(long, 80), port("http", 81)), nil,
			[]string{base + "b882ad2c", base + "_tcp/_http/b882ad2c", "/skydns/arpa/in-addr/1/2/3/4"},
			[]string{"invalid_label b882ad2c._" + long + "._tcp." + svcName}},
		{"api: headless endpoint port named with 63 bytes", headless, endpoints(subset(twoPorts, "10.0.0.1", "10.0.0.2")),
			[]string{
				base + "f488b1a2", base + "d8321f45", base + "_tcp/_http/f488b1a2", base + "_tcp/_http/d8321f45",
				"/skydns/arpa/in-addr/10/0/0/1", "/skydns/arpa/in-addr/10/0/0/2",
			},
			[]string{"invalid_label f488b1a2._" + long + "._tcp." + svcName, "invalid_label d8321f45._" + long + "._tcp." + svcName}},
		{"api: headless endpoint with an invalid hostname takes its hash label", headless,
			endpoints(v1.EndpointSubset{Addresses: []v1.EndpointAddress{{IP: "10.0.0.1", Hostname: "a.b"}}}),
			[]string{base + "f488b1a2", "/skydns/arpa/in-addr/10/0/0/1"}, nil},
		{"port name with a dot", service("1.2.3.4", port("ht.tp", 80)), nil,
			[]string{base + "b882ad2c", "/skydns/arpa/in-addr/1/2/3/4"},
			[]string{"invalid_label b882ad2c._ht.tp._tcp." + svcName}},
		{"protocol with a slash", service("1.2.3.4", v1.ServicePort{Name: "http", Port: 80, Protocol: "T/CP"}), nil,
			[]string{base + "b882ad2c", "/skydns/arpa/in-addr/1/2/3/4"},
			[]string{"invalid_label b882ad2c._http._t/cp." + svcName}},
		{"upper-case port name is lowercased, not skipped", service("1.2.3.4", port("HTTP", 80)), nil,
			[]string{base + "b882ad2c", base + "_tcp/_http/b882ad2c", "/skydns/arpa/in-addr/1/2/3/4"}, nil},
		{"service name with a dot", named("default", "web.x"), nil, nil,
			[]string{"invalid_label web.x.default.svc.cluster.local.", "invalid_label web.x.default.svc.cluster.local."}},
		{"service name with a slash", named("default", "web/x"), nil, nil,
			[]string{"invalid_label web/x.default.svc.cluster.local.", "invalid_label web/x.default.svc.cluster.local."}},
		{"service name over 63 bytes", named("default", strings.Repeat("w", 64)), nil, nil,
			[]string{"invalid_label " + strings.Repeat("w", 64) + ".default.svc.cluster.local.", "invalid_label " + strings.Repeat("w", 64) + ".default.svc.cluster.local."}},
		{"empty namespace", named("", "web"), nil, nil,
			[]string{"invalid_label web..svc.cluster.local.", "invalid_label web..svc.cluster.local."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, skipped, err := namer.serviceOwned(tc.svc, tc.eps)
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Sorted(maps.Keys(r)); !slices.Equal(got, sorted(tc.keys)) {
				t.Errorf("keys %q, want %q", got, sorted(tc.keys))
			}
			var got []string
			for _, s := range skipped {
				got = append(got, s.Reason+" "+s.Name)
			}
			if !slices.Equal(got, tc.skipped) {
				t.Errorf("skipped %q, want %q", got, tc.skipped)
			}
		})
	}
}

func TestPodInANamespaceThatIsNoLabelIsSkipped(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "a.b"}, Status: v1.PodStatus{PodIP: "1.2.3.4"}}
	r, skipped := namer.PodRecords(pod)
	if len(r) != 0 || len(skipped) != 1 || skipped[0].Reason != skipLabel || skipped[0].Name != "b882ad2c.1-2-3-4.a.b.pod.cluster.local." {
		t.Errorf("records %v, skipped %v", r, skipped)
	}
}
