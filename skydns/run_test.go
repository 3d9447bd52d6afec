package skydns

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// flakyConfigKey fails its first failures reads, then answers with value
// (nil: the key is missing).
type flakyConfigKey struct {
	failures, reads int
	value           []byte
}

func (e *flakyConfigKey) Get(ctx context.Context, key string, _ ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	e.reads++
	if e.reads <= e.failures {
		return nil, errors.New("connection refused")
	}
	resp := &clientv3.GetResponse{Header: &etcdserverpb.ResponseHeader{}}
	if e.value != nil {
		resp.Kvs = []*mvccpb.KeyValue{{Key: []byte(key), Value: e.value}}
	}
	return resp, nil
}

// The overlay is read once etcd answers, however long that takes (skydns
// answers with its flags meanwhile), and a failed read is logged once.
func TestAwaitOverlayWaitsForEtcd(t *testing.T) {
	cases := []struct {
		name     string
		etcd     *flakyConfigKey
		want     string
		warnings int
	}{
		{"etcd up, key present", &flakyConfigKey{value: []byte(`{"ttl":120}`)}, `{"ttl":120}`, 0},
		{"etcd up, key missing", &flakyConfigKey{}, "", 0},
		{"etcd down at first, key present", &flakyConfigKey{failures: 2, value: []byte(`{"ttl":120}`)}, `{"ttl":120}`, 1},
		{"etcd down at first, key missing", &flakyConfigKey{failures: 2}, "", 1},
	}
	opts := EtcdOptions{ConfigKey: "/skydns/config", Timeout: time.Second}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			got := awaitOverlay(context.Background(), tc.etcd, opts, slog.New(slog.NewTextHandler(&logs, nil)))
			if string(got) != tc.want || tc.etcd.reads != tc.etcd.failures+1 {
				t.Fatalf("overlay %q after %d reads, want %q after %d", got, tc.etcd.reads, tc.want, tc.etcd.failures+1)
			}
			if n := strings.Count(logs.String(), "cannot read config from etcd"); n != tc.warnings {
				t.Fatalf("logged the failed read %d times, want %d:\n%s", n, tc.warnings, logs.String())
			}
		})
	}
}

// A skydns stopping while etcd is still away stops waiting for the overlay.
func TestAwaitOverlayEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	etcd := &flakyConfigKey{failures: 1 << 30}
	done := make(chan []byte)
	go func() {
		done <- awaitOverlay(ctx, etcd, EtcdOptions{Timeout: time.Second}, slog.New(slog.DiscardHandler))
	}()
	cancel()
	if got := <-done; got != nil {
		t.Fatalf("overlay %q from an etcd that never answered", got)
	}
}
