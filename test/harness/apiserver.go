package harness

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Tokens of the two users the test cluster knows: an administrator, and
// kube2sky, which has no rights but those a test grants it.
const (
	AdminToken    = "admin-token"
	Kube2skyToken = "kube2sky-token"
	Kube2skyUser  = "kube2sky"
)

// Cluster is a real kube-apiserver on loopback over its own etcd. There is
// no controller manager: tests create Endpoints themselves.
type Cluster struct {
	URL   string
	Admin kubernetes.Interface
	Etcd  *Etcd // The apiserver's own.
	dir   string
	t     testing.TB // The test that owns the apiserver process, restarted or not.
	args  []string
	proc  *Process
}

// APIServerBinary is the pinned build: SKYPOD_APISERVER_BIN, else
// .cache/kube-apiserver-v1.34.3.
func APIServerBinary(t testing.TB) string {
	t.Helper()
	return cachedBuild(t, "SKYPOD_APISERVER_BIN", "kube-apiserver-v1.34.3", "apiserver")
}

// ClusterOptions change what StartClusterWith starts; the zero value is
// StartCluster's cluster.
type ClusterOptions struct {
	// ServiceCIDR is the IPv4 service range, 10.0.0.0/16 (65,534 ClusterIPs)
	// unless set; the apiserver takes up to a /12 (about a million), which
	// a benchmark of 100,000 services needs.
	ServiceCIDR string
	// EtcdFlags follow the project's etcd flags, as StartEtcd's extra do:
	// a larger --quota-backend-bytes for a benchmark's hundreds of
	// thousands of objects.
	EtcdFlags []string
}

// StartCluster starts etcd and a kube-apiserver with RBAC and token
// authentication, and waits until it is ready.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	return StartClusterWith(t, ClusterOptions{})
}

// StartClusterWith is StartCluster with opts.
func StartClusterWith(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	if opts.ServiceCIDR == "" {
		opts.ServiceCIDR = "10.0.0.0/16"
	}
	etcd := StartEtcd(t, opts.EtcdFlags...)
	dir := t.TempDir()
	writeClusterFiles(t, dir)
	port := FreePort(t)
	c := &Cluster{URL: fmt.Sprintf("https://127.0.0.1:%d", port), Etcd: etcd, dir: dir, t: t, args: []string{
		"--etcd-servers=" + etcd.URL,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		// Dual-stack, so the IPv6 cases of the DNS spec can be tested; services
		// stay IPv4-only unless they ask for both.
		"--service-cluster-ip-range=" + opts.ServiceCIDR + ",fd00:10::/108",
		// Service names that start with a digit (e2e case E11): alpha in 1.34.
		"--feature-gates=RelaxedServiceNameValidation=true",
		"--authorization-mode=RBAC",
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		fmt.Sprintf("--secure-port=%d", port),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--cert-dir=" + filepath.Join(dir, "certs"),
	}}
	c.StartAPIServer()
	admin, err := kubernetes.NewForConfig(c.RestConfig(AdminToken))
	if err != nil {
		t.Fatal(err)
	}
	c.Admin = admin
	Eventually(t, 30*time.Second, "default/kubernetes service", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := admin.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		return err
	})
	return c
}

// StartAPIServer (re)starts the apiserver process, on the same port, etcd
// and certificates, and waits until it is ready.
func (c *Cluster) StartAPIServer() {
	c.t.Helper()
	c.proc = Start(c.t, "kube-apiserver", APIServerBinary(c.t), c.args)
	WaitAPIServerReady(c.t, c.URL)
}

// KillAPIServer kills the apiserver process (as a crash would); its etcd
// keeps running.
func (c *Cluster) KillAPIServer() { c.proc.Kill() }

// RestConfig is a client config for the user with token.
func (c *Cluster) RestConfig(token string) *rest.Config { return APIServerConfig(c.URL, token) }

// APIServerConfig is a client config for a test apiserver at url, whose
// certificate is self-signed.
func APIServerConfig(url, token string) *rest.Config {
	return &rest.Config{Host: url, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		WarningHandler: rest.NoWarnings{}} // The tests use v1 Endpoints on purpose: kube2sky's default.
}

// WaitAPIServerReady waits until the apiserver at url says /readyz ok to
// the administrator.
func WaitAPIServerReady(t testing.TB, url string) {
	t.Helper()
	httpc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	Eventually(t, 90*time.Second, "kube-apiserver ready", func() error {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+AdminToken)
		resp, err := httpc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
}

// Kubeconfig writes a kubeconfig file for the user with token.
func (c *Cluster) Kubeconfig(t testing.TB, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(kubeconfig(c.URL, token)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeClusterFiles writes what an API server needs into dir: service-
// account keys (sa.key, sa.pub) and the token users (tokens.csv).
func writeClusterFiles(t testing.TB, dir string) {
	t.Helper()
	writeServiceAccountKeys(t, dir)
	tokens := fmt.Sprintf("%s,admin,admin,system:masters\n%s,%s,%s\n", AdminToken, Kube2skyToken, Kube2skyUser, Kube2skyUser)
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(tokens), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeServiceAccountKeys(t testing.TB, dir string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"sa.key": {Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)},
		"sa.pub": {Type: "PUBLIC KEY", Bytes: pub},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func kubeconfig(server, token string) string {
	return strings.Join([]string{
		"apiVersion: v1", "kind: Config",
		"clusters:", "- name: test", "  cluster:", "    server: " + server, "    insecure-skip-tls-verify: true",
		"users:", "- name: user", "  user:", "    token: " + token,
		"contexts:", "- name: test", "  context:", "    cluster: test", "    user: user",
		"current-context: test", "",
	}, "\n")
}
