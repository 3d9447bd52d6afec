//go:build integration

package test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skypod/skypod/test/benchload"
	"github.com/skypod/skypod/test/harness"
)

// The faults of TestFaults that take more than a signal.

// compactEverySecond compacts the pod's etcd to its current revision once a
// second until ctx ends, while skydns watches and kube2sky writes.
func (r *faultRun) compactEverySecond(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	n := 0
	for {
		select {
		case <-ctx.Done():
			if n < 3 {
				r.t.Fatalf("only %d compactions while the fault lasted", n)
			}
			r.t.Logf("%d compactions to the current revision", n)
			return
		case <-tick.C:
			r.compact(context.Background()) // Not ctx: the fault's end must not cut one short.
			n++
		}
	}
}

// compact compacts etcd up to its current revision.
func (r *faultRun) compact(ctx context.Context, opts ...clientv3.CompactOption) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp := must(r.etcdc.Get(ctx, "/", clientv3.WithCountOnly()))(r.t)
	must(r.etcdc.Compact(ctx, resp.Header.Revision, opts...))(r.t)
}

// victimNames are the services kube2sky-sigkill deletes and recreates
// while kube2sky is down: two ClusterIP services and a headless one.
func victimNames() []string { return []string{"victim-0", "victim-1", "victim-hl"} }

// killKube2skyMidSync makes the victims and waits until skydns answers for
// them, then creates a burst of services and SIGKILLs kube2sky at the first
// write of the burst it makes, while it has the rest to write.
func (r *faultRun) killKube2skyMidSync() {
	ctx, t := context.Background(), r.t
	for _, name := range victimNames() {
		r.createVictim(ctx, name)
	}
	r.resolveAll()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Watched before the burst starts, so its first write is seen.
	writes := r.etcdc.Watch(wctx, "/skydns/local/cluster/svc/"+r.ns+"/burst-", clientv3.WithPrefix())
	const burst = 30
	created := make(chan error, 1)
	go func() {
		for i := range burst {
			if _, err := r.admin.CoreV1().Services(r.ns).Create(ctx, clusterIPService(fmt.Sprintf("burst-%d", i), "http"), metav1.CreateOptions{}); err != nil {
				created <- err
				return
			}
		}
		created <- nil
	}()
	if resp := <-writes; resp.Err() != nil || len(resp.Events) == 0 {
		t.Fatalf("no write of the burst seen in etcd: %v", resp.Err())
	}
	r.pod.kube2sky.Kill()
	if err := <-created; err != nil {
		t.Fatal(err)
	}
	n := must(r.etcdc.Get(ctx, "/skydns/local/cluster/svc/"+r.ns+"/burst-", clientv3.WithPrefix(), clientv3.WithCountOnly()))(t).Count
	t.Logf("kube2sky SIGKILLed with %d keys of the %d-service burst (2 keys each) in etcd", n, burst)
}

func (r *faultRun) createVictim(ctx context.Context, name string) {
	core := r.admin.CoreV1()
	if !strings.HasSuffix(name, "-hl") {
		must(core.Services(r.ns).Create(ctx, clusterIPService(name, "http"), metav1.CreateOptions{}))(r.t)
		return
	}
	must(core.Services(r.ns).Create(ctx, headlessService(name), metav1.CreateOptions{}))(r.t)
	must(core.Endpoints(r.ns).Create(ctx, r.endpoints(name, "pet"), metav1.CreateOptions{}))(r.t)
}

// recreateVictims deletes each victim and makes it again: the API server
// gives the ClusterIP ones new addresses, the headless one new endpoints.
func (r *faultRun) recreateVictims(context.Context) {
	ctx := context.Background() // Not the fault's: it must not cut this short.
	core := r.admin.CoreV1()
	for _, name := range victimNames() {
		old := must(core.Services(r.ns).Get(ctx, name, metav1.GetOptions{}))(r.t)
		if err := core.Services(r.ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			r.t.Fatal(err)
		}
		r.createVictim(ctx, name)
		if now := must(core.Services(r.ns).Get(ctx, name, metav1.GetOptions{}))(r.t); !benchload.IsHeadless(old) && now.Spec.ClusterIP == old.Spec.ClusterIP {
			r.t.Fatalf("%s got its old ClusterIP %s again; the scenario needs a new one", name, old.Spec.ClusterIP)
		}
	}
}

// restartSkydnsWithoutEtcd kills etcd, then skydns, and starts skydns again
// on the same address: it cannot load, so it must say SERVFAIL, never
// NXDOMAIN, for names in its zone.
func (r *faultRun) restartSkydnsWithoutEtcd() {
	r.pod.etcd.Stop()
	addr := r.pod.skydns.Addr
	r.pod.skydns.Kill()
	r.pod.skydns = startSkydnsUnloaded(r.t, r.pod.etcd.URL, append(r.pod.skydnsArgs, "-addr="+addr)...)
	for name := range r.stable {
		m, err := harness.Exchange(addr, "udp", name, dns.TypeA)
		if err := harness.WantRcode(m, err, dns.RcodeServerFailure); err != nil {
			r.t.Errorf("%s from a skydns that cannot reach etcd: %v", name, err)
		}
	}
}

// fillEtcd writes junk into the pod's etcd until it refuses a write with
// NOSPACE, its alarm raised.
func (r *faultRun) fillEtcd() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	junk := strings.Repeat("x", junkValue)
	for i := 0; ; i++ {
		_, err := r.etcdc.Put(ctx, fmt.Sprintf("/junk/%d", i), junk)
		if err != nil && strings.Contains(err.Error(), "database space exceeded") {
			r.t.Logf("etcd at NOSPACE after %d MiB of junk", i)
			return
		}
		if err != nil || i > 4*noSpaceQuota/junkValue {
			r.t.Fatalf("put %d MiB of junk into an etcd with a %d MiB quota, no NOSPACE: %v", i+1, noSpaceQuota>>20, err)
		}
	}
}

// clearNoSpace frees the space as an operator would: delete the junk,
// compact, defragment, disarm the alarm. Nothing is restarted.
func (r *faultRun) clearNoSpace() time.Time {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must(r.etcdc.Delete(ctx, "/junk/", clientv3.WithPrefix()))(r.t)
	r.compact(ctx, clientv3.WithCompactPhysical())
	must(r.etcdc.Defragment(ctx, r.pod.etcd.URL))(r.t)
	must(r.etcdc.AlarmDisarm(ctx, &clientv3.AlarmMember{}))(r.t)
	if alarms := must(r.etcdc.AlarmList(ctx))(r.t); len(alarms.Alarms) != 0 {
		r.t.Fatalf("alarms left after disarm: %v", alarms.Alarms)
	}
	return time.Now()
}
