package kube2sky

import "testing"

func TestOwnerOfKey(t *testing.T) {
	_, ptrToSvc := value("web.default.svc.cluster.local.", 0)
	_, ptrToEndpoint := value("1a2b3c.db.prod.svc.cluster.local.", 0)
	_, ptrElsewhere := value("printer.example.com.", 0)
	tests := []struct {
		key, value string
		want       Owner
		owned      bool
	}{
		{"/skydns/local/cluster/svc/default/web/f488b1a2", "", serviceOwner("default", "web"), true},
		{"/skydns/local/cluster/svc/default/web/_tcp/_http/f488b1a2", "", serviceOwner("default", "web"), true},
		{"/skydns/local/cluster/svc/default/ext", "", serviceOwner("default", "ext"), true},
		{"/skydns/local/cluster/svc/default", "", Owner{}, false},
		{"/skydns/local/cluster/pod/default/1-2-3-4/b882ad2c", "", podOwner("default", "1.2.3.4"), true},
		{"/skydns/local/cluster/pod/default/2001-db8--7/x", "", podOwner("default", "2001:db8::7"), true},
		{"/skydns/arpa/in-addr/10/0/0/1", ptrToSvc, serviceOwner("default", "web"), true},
		{"/skydns/arpa/in-addr/10/0/0/2", ptrToEndpoint, serviceOwner("prod", "db"), true},
		{"/skydns/arpa/in-addr/192/0/2/1", ptrElsewhere, Owner{}, false},
		{"/skydns/arpa/in-addr/192/0/2/2", "not json", Owner{}, false},
		{"/skydns/local/cluster/dns-version", "", dnsVersionOwner, true},
		{"/skydns/local/cluster/dns-version-not", "", Owner{}, false},
		{"/skydns/config", "", Owner{}, false},
	}
	for _, tc := range tests {
		got, ok := namer.ownerOfKey(tc.key, tc.value)
		if got != tc.want || ok != tc.owned {
			t.Errorf("%s: %v %v, want %v %v", tc.key, got, ok, tc.want, tc.owned)
		}
	}
	for o, want := range map[Owner]string{
		serviceOwner("ns", "web"): "svc/ns/web", podOwner("ns", "10.0.0.1"): "pod/ns/10-0-0-1", dnsVersionOwner: "dns-version",
	} {
		if o.String() != want {
			t.Errorf("%#v.String() = %s, want %s", o, o, want)
		}
	}
}
