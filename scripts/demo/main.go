// Command demo creates the objects `make up` shows: a namespace with a
// ClusterIP service with named ports, a headless service with endpoints
// (one with a hostname), and a pod with an IP. There is no controller
// manager in `make up`, so it writes the Endpoints and the pod's status
// itself, as the tests do.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: demo KUBECONFIG")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.WarningHandler = rest.NoWarnings{} // v1 Endpoints on purpose: kube2sky's default.
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	create := metav1.CreateOptions{}
	tcp := v1.ProtocolTCP
	steps := []func() error{
		func() error {
			_, err := c.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}, create)
			return err
		},
		func() error {
			_, err := c.CoreV1().ServiceAccounts("demo").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, create)
			return err
		},
		func() error {
			_, err := c.CoreV1().Services("demo").Create(ctx, &v1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "web"},
				Spec: v1.ServiceSpec{Ports: []v1.ServicePort{
					{Name: "http", Port: 80, Protocol: tcp}, {Name: "https", Port: 443, Protocol: tcp}}},
			}, create)
			return err
		},
		func() error {
			_, err := c.CoreV1().Services("demo").Create(ctx, &v1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: "db"},
				Spec:       v1.ServiceSpec{ClusterIP: v1.ClusterIPNone, Ports: []v1.ServicePort{{Name: "postgres", Port: 5432, Protocol: tcp}}},
			}, create)
			return err
		},
		func() error {
			_, err := c.CoreV1().Endpoints("demo").Create(ctx, &v1.Endpoints{
				ObjectMeta: metav1.ObjectMeta{Name: "db"},
				Subsets: []v1.EndpointSubset{{
					Addresses: []v1.EndpointAddress{{IP: "10.244.1.5", Hostname: "db-0"}, {IP: "10.244.1.6"}},
					Ports:     []v1.EndpointPort{{Name: "postgres", Port: 5432, Protocol: tcp}},
				}},
			}, create)
			return err
		},
		func() error {
			_, err := c.CoreV1().Pods("demo").Create(ctx, &v1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "web-0"},
				Spec:       v1.PodSpec{Containers: []v1.Container{{Name: "web", Image: "none"}}},
			}, create)
			return err
		},
		func() error {
			patch := []byte(`{"status":{"podIP":"10.244.1.7","podIPs":[{"ip":"10.244.1.7"}]}}`)
			_, err := c.CoreV1().Pods("demo").Patch(ctx, "web-0", types.MergePatchType, patch, metav1.PatchOptions{}, "status")
			return err
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	svc, err := c.CoreV1().Services("demo").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		return err
	}
	fmt.Println(svc.Spec.ClusterIP)
	return nil
}
