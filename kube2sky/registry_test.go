package kube2sky

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newTestRegistry(store Store) *Registry {
	return NewRegistry(store, namer, time.Second, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
}

// A sync that commits while a resync's list is in flight is newer than the
// list: the reset that follows must keep it, or the next plan would undo it
// (put back what it deleted, forget what it put).
func TestResyncKeepsWritesNewerThanItsList(t *testing.T) {
	const (
		oldKey = "/skydns/local/cluster/svc/default/web/f488b1a2"
		newKey = "/skydns/local/cluster/svc/default/web/d8321f45"
		oldVal = `{"host":"10.0.0.1","priority":10,"weight":10,"ttl":30}`
		newVal = `{"host":"10.0.0.2","priority":10,"weight":10,"ttl":30}`
	)
	web := serviceOwner("default", "web")
	store := &memStore{data: Records{oldKey: oldVal}}
	r := newTestRegistry(store)
	ctx := context.Background()
	if _, _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	desired := Records{newKey: newVal}
	store.afterList = func() {
		store.afterList = nil
		if err := r.Apply(ctx, web, r.Plan(web, desired)); err != nil {
			t.Error(err)
		}
	}
	owners, _, err := r.Refresh(ctx) // Lists {oldKey}; the sync then moves web to newKey.
	if err != nil {
		t.Fatal(err)
	}
	if data, _, _ := store.snapshot(); data[newKey] != newVal || data[oldKey] != "" {
		t.Fatalf("the racing sync did not commit: %v", data)
	}
	if p := r.Plan(web, desired); !p.Empty() {
		t.Errorf("after the reset the registry lost the newer write: plan %+v", p)
	}
	if len(owners) != 1 || owners[0] != web {
		t.Errorf("owners after reset: %v", owners)
	}

	// A list taken after the write shows it; the revision it was written
	// at is no longer needed.
	if _, _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if p := r.Plan(web, desired); !p.Empty() || len(r.state.written) != 0 {
		t.Errorf("plan %+v, revisions kept %v", p, r.state.written)
	}
	if p := r.Plan(web, Records{}); len(p.Deletes) != 1 || p.Deletes[0] != newKey {
		t.Errorf("deleting the service: %+v", p)
	}
}

// A reverse record that moves to another service with its IP is the new
// owner's: the old owner no longer deletes it.
func TestReverseRecordChangesHands(t *testing.T) {
	const ptr = "/skydns/arpa/in-addr/10/0/0/1"
	a, b := serviceOwner("default", "a"), serviceOwner("default", "b")
	_, toA := value("a.default.svc.cluster.local.", 0)
	_, toB := value("b.default.svc.cluster.local.", 0)
	store := &memStore{data: Records{ptr: toA}}
	r := newTestRegistry(store)
	ctx := context.Background()
	if _, _, err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Apply(ctx, b, r.Plan(b, Records{ptr: toB})); err != nil {
		t.Fatal(err)
	}
	if p := r.Plan(a, Records{}); !p.Empty() {
		t.Errorf("the old owner would delete the moved PTR: %+v", p)
	}
	if data, _, _ := store.snapshot(); data[ptr] != toB {
		t.Errorf("PTR: %s", data[ptr])
	}
}
