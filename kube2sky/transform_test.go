package kube2sky

import (
	"maps"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func fatMeta(annotations map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: "web", Namespace: "default", UID: "u1", ResourceVersion: "7",
		Labels:        map[string]string{"app": "web", discoveryv1.LabelServiceName: "web"},
		Annotations:   annotations,
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply}},
	}
}

func slim[T any](t *testing.T, obj T) T {
	t.Helper()
	out, err := keepUsed(obj)
	if err != nil {
		t.Fatal(err)
	}
	return out.(T)
}

// The slimmed objects give exactly the records the full ones do, and keep
// none of the fields kube2sky does not read.
func TestKeepUsedKeepsTheRecords(t *testing.T) {
	n := namer
	svc := &v1.Service{
		ObjectMeta: fatMeta(map[string]string{tolerateUnreadyAnnotation: "true", "kubectl.kubernetes.io/last-applied-configuration": "{...}"}),
		Spec: v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, Selector: map[string]string{"app": "web"},
			Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}}},
	}
	addr := func(ip, host string) v1.EndpointAddress {
		return v1.EndpointAddress{IP: ip, Hostname: host, NodeName: ptr.To("node-1"), TargetRef: &v1.ObjectReference{Kind: "Pod", Name: "web-" + host}}
	}
	eps := &v1.Endpoints{
		ObjectMeta: fatMeta(map[string]string{hostnamesAnnotation: `{"10.0.0.2":{"HostName":"two"}}`}),
		Subsets: []v1.EndpointSubset{{
			Addresses: []v1.EndpointAddress{addr("10.0.0.1", "one"), addr("10.0.0.2", "")}, NotReadyAddresses: []v1.EndpointAddress{addr("10.0.0.3", "three")},
			Ports: []v1.EndpointPort{{Name: "http", Port: 8080, Protocol: v1.ProtocolTCP, AppProtocol: ptr.To("http")}},
		}},
	}
	slimSvc, slimEps := slim(t, svc), slim(t, eps)
	for what, records := range map[string]func(*v1.Service, *v1.Endpoints) (Records, []Skip, error){"service": n.ServiceRecords, "reverse": n.ReverseRecords} {
		want, _, _ := records(svc, eps)
		got, _, err := records(slimSvc, slimEps)
		if err != nil || !maps.Equal(got, want) || len(want) == 0 {
			t.Errorf("%s records from the slim objects: %v %v, want %v", what, got, err, want)
		}
	}
	if slimSvc.ManagedFields != nil || slimSvc.Labels != nil || len(slimSvc.Annotations) != 1 || slimSvc.Spec.Selector != nil ||
		slimEps.Subsets[0].Addresses[0].TargetRef != nil || slimSvc.ResourceVersion != "7" {
		t.Errorf("kept too much or too little: %+v %+v", slimSvc, slimEps)
	}

	pod := &v1.Pod{ObjectMeta: fatMeta(nil), Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: "web"}}},
		Status: v1.PodStatus{Phase: v1.PodRunning, PodIP: "10.1.0.1", PodIPs: []v1.PodIP{{IP: "10.1.0.1"}, {IP: "fd00::1"}}}}
	slimPod := slim(t, pod)
	got, _ := n.PodRecords(slimPod)
	want, _ := n.PodRecords(pod)
	if !maps.Equal(got, want) || len(want) != 2 || slimPod.Spec.Containers != nil {
		t.Errorf("pod records from the slim pod: %v, want %v; spec %+v", got, want, slimPod.Spec)
	}

	es := &discoveryv1.EndpointSlice{ObjectMeta: fatMeta(nil), AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(v1.ProtocolTCP)}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Hostname: ptr.To("one"), NodeName: ptr.To("node-1"),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true)}}}}
	slimES := slim(t, es)
	full := endpointsFromSlices("default", "web", []*discoveryv1.EndpointSlice{es})
	fromSlim := endpointsFromSlices("default", "web", []*discoveryv1.EndpointSlice{slimES})
	if got, want := mustRecords(t, svc, fromSlim), mustRecords(t, svc, full); !maps.Equal(got, want) || len(slimES.Labels) != 1 || slimES.Endpoints[0].NodeName != nil {
		t.Errorf("slice records from the slim slice: %v, want %v; labels %v", got, want, slimES.Labels)
	}
}
