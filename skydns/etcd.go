package skydns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/skypod/skypod/internal/backoff"
	"github.com/skypod/skypod/internal/etcdclient"
	"github.com/skypod/skypod/skydns/msg"
)

// etcdReader is the part of the etcd client the watcher needs.
type etcdReader interface {
	Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error)
	Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan
	etcdclient.AlarmLister // For the NOSPACE alarm, which skydns reports but is not stopped by.
}

// Watcher keeps an Index equal to the prefix in etcd: it lists once, then
// watches from the listed revision. A broken or compacted watch, or a
// failed health probe, ends in a fresh list, which brings the index to
// etcd's records in place (see Load) while it keeps answering.
type Watcher struct {
	etcd        etcdReader
	prefix      string // "/skydns/"
	index       *Index
	metrics     *Metrics
	log         *slog.Logger
	timeout     time.Duration // Per request.
	probeEvery  time.Duration // How often an idle watch checks etcd is there.
	maxBackoff  time.Duration
	page        int64 // Keys a list reads per request: listPage.
	up          atomic.Bool
	downSince   atomic.Int64 // Unix nanoseconds; 0 while up.
	malformedMu sync.Mutex
	malformed   map[string]malformedWrite // Key -> the write already logged.
	lists       uint64                    // Lists begun (attempts), numbering malformedWrite.list.
	noSpace     *etcdclient.NoSpaceState
}

// NewWatcher mirrors /prefix/ of etcd into index.
func NewWatcher(etcd etcdReader, prefix string, index *Index, metrics *Metrics, log *slog.Logger, timeout time.Duration) *Watcher {
	w := &Watcher{
		etcd: etcd, prefix: "/" + prefix + "/", index: index, metrics: metrics, log: log,
		timeout: timeout, probeEvery: 2 * time.Second, maxBackoff: 5 * time.Second, page: listPage,
		malformed: make(map[string]malformedWrite),
		noSpace: &etcdclient.NoSpaceState{
			Gauge: metrics.noSpace, Log: log,
			Raised: "etcd raised its NOSPACE alarm: kube2sky's writes are refused, so records stay as etcd last took them " +
				"until an operator frees space (compact, defrag) and disarms the alarm; still answering",
			Cleared: "etcd's NOSPACE alarm has cleared: records follow kube2sky's writes again",
		},
	}
	w.downSince.Store(time.Now().UnixNano())
	return w
}

// Run mirrors etcd until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	retry := backoff.Doubling{Min: 100 * time.Millisecond, Max: w.maxBackoff}
	failing := false
	for ctx.Err() == nil {
		rev, err := w.list(ctx)
		if err != nil {
			if !failing && !w.up.Load() {
				// setDown logs the fall from up; this covers an etcd that was
				// never reachable, so a start-up outage is not silent.
				w.log.Warn("cannot list records from etcd; retrying", "err", err, "loaded", w.index.Loaded())
			}
			failing = true
			w.setDown(err)
			retry.Wait(ctx)
			continue
		}
		failing = false
		retry.Reset()
		w.setUp()
		if err := w.watch(ctx, rev); err != nil && ctx.Err() == nil {
			w.log.Warn("etcd watch ended; listing again", "err", err)
		}
	}
}

// listPage is how many keys one request of a list reads. A list applies
// each page to the index and drops the response before asking for the
// next, so what it holds beside the index is one page (about 100 KiB of
// kube2sky's records), not the whole prefix (over 40 MiB at 100,000
// services); a thousand keys a request keep the round trips to a few
// hundred at that size.
const listPage = 1000

// listRestarts bounds how often a list starts over because etcd compacted
// the revision it was reading: each start takes a fresh revision, so only
// a compaction interval shorter than a list fails them all.
const listRestarts = 5

// list loads every record under the prefix into the index, starting over
// at a newer revision when the one it read is compacted mid-list, and
// removes what it did not find.
func (w *Watcher) list(ctx context.Context) (int64, error) {
	l := w.index.NewLoad()
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			l.Restart()
		}
		w.beginList()
		rev, records, err := w.listAt(ctx, l)
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < listRestarts {
			w.log.Warn("etcd compacted the revision being listed; listing again", "attempt", attempt)
			continue
		}
		if err != nil {
			return 0, err
		}
		changed, removed := l.Commit()
		w.endList()
		w.metrics.relists.Inc()
		w.metrics.lastChange.SetToCurrentTime()
		w.log.Info("loaded records from etcd", "records", records, "revision", rev, "changed", changed, "removed", removed)
		return rev, nil
	}
}

// listAt reads the prefix a page at a time into l, every page at the
// revision of the first, so the result is one consistent snapshot. It
// returns that revision and the records loaded.
func (w *Watcher) listAt(ctx context.Context, l *Load) (rev int64, records int, err error) {
	pages := etcdclient.Pages{Size: w.page, Timeout: w.timeout}
	rev, err = pages.Prefix(ctx, w.etcd, w.prefix, 0, func(kv *mvccpb.KeyValue) {
		if l.Keep(kv.Key, kv.ModRevision) {
			records++ // Unchanged since the last list or watch: shared, not parsed.
		} else if s, ok := w.parse(kv); ok {
			l.Add(s, kv.ModRevision)
			records++
		}
	})
	if err != nil {
		return 0, 0, err
	}
	return rev, records, nil
}

// watch applies changes after rev until the watch breaks or etcd stops
// answering health probes.
func (w *Watcher) watch(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel() // The etcd client leaks a watch whose context is never cancelled.
	events := w.etcd.Watch(wctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	probe := time.NewTicker(w.probeEvery)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case resp, ok := <-events:
			if !ok {
				return errors.New("watch channel closed")
			}
			if err := resp.Err(); err != nil {
				return err // Compacted past rev, lost leader, cancelled...
			}
			w.apply(resp.Events)
		case <-probe.C:
			if err := w.probe(ctx); err != nil {
				w.setDown(err)
				return err
			}
		}
	}
}

// probe asks etcd for a count of nothing: the watch stream alone does not
// say when the server has gone, because the client silently retries.
func (w *Watcher) probe(ctx context.Context) error {
	_, err := etcdclient.GetWithin(ctx, w.etcd, w.timeout, w.prefix+"config", clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("etcd health probe: %w", err)
	}
	actx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	// skydns only reads, which the alarm allows; it reports it because its
	// records stop following the cluster while kube2sky's writes fail.
	w.noSpace.Check(actx, w.etcd)
	return nil
}

func (w *Watcher) apply(events []*clientv3.Event) {
	for _, ev := range events {
		key := string(ev.Kv.Key)
		switch ev.Type {
		case mvccpb.PUT:
			if s, ok := w.parse(ev.Kv); ok {
				w.index.PutAt(s, ev.Kv.ModRevision)
			} else {
				w.index.Delete(key) // The key no longer holds a usable record.
			}
		case mvccpb.DELETE:
			w.index.Delete(key)
			w.forgetMalformed(key)
		}
	}
	if len(events) > 0 {
		w.metrics.lastChange.SetToCurrentTime()
	}
}

// parse decodes one value. A malformed one, or one under a key that is not
// a name (a segment with a dot, empty or over 63 bytes), is skipped and
// logged and counted once per write, so a relist does not repeat the
// complaint.
func (w *Watcher) parse(kv *mvccpb.KeyValue) (msg.Service, bool) {
	key := string(kv.Key)
	s, err := msg.Unmarshal(key, kv.Value)
	if err == nil && !w.nameKey(key) {
		err = fmt.Errorf("key segments must be DNS labels (1-%d bytes, no dots)", msg.MaxLabelLen)
	}
	if err == nil {
		w.forgetMalformed(key) // Fixed by this write.
		return s, true
	}
	w.malformedMu.Lock()
	seen := w.malformed[key].rev == kv.ModRevision
	if !seen && len(w.malformed) >= maxMalformedRemembered {
		clear(w.malformed) // Bounded: past it, a relist may log a key again.
	}
	w.malformed[key] = malformedWrite{rev: kv.ModRevision, list: w.lists}
	w.malformedMu.Unlock()
	if !seen {
		w.metrics.malformed.Inc()
		w.log.Warn("skipping malformed record", "key", key, "err", err)
	}
	return msg.Service{}, false
}

// maxMalformedRemembered bounds the malformed keys remembered so each is
// logged once: whoever can write under the prefix could otherwise grow
// skydns's memory with ever new bad keys.
const maxMalformedRemembered = 4096

// malformedWrite is a malformed value already logged and counted: its
// key's mod revision, and the list that last read it (or, for a watch
// event, the list before it).
type malformedWrite struct {
	rev  int64
	list uint64
}

// beginList numbers a list's attempt, for the malformed keys it reads.
func (w *Watcher) beginList() {
	w.malformedMu.Lock()
	defer w.malformedMu.Unlock()
	w.lists++
}

// endList forgets, once a list has loaded, the malformed keys it did not
// read: they were deleted while no watch saw it (their delete is what
// would forget them otherwise) or only an abandoned attempt read them.
func (w *Watcher) endList() {
	w.malformedMu.Lock()
	defer w.malformedMu.Unlock()
	maps.DeleteFunc(w.malformed, func(_ string, m malformedWrite) bool { return m.list != w.lists })
}

// forgetMalformed drops key from the malformed keys once it is deleted or
// holds a good record again.
func (w *Watcher) forgetMalformed(key string) {
	w.malformedMu.Lock()
	defer w.malformedMu.Unlock()
	if len(w.malformed) > 0 {
		delete(w.malformed, key)
	}
}

// nameKey reports whether key maps to a DNS name under the prefix.
func (w *Watcher) nameKey(key string) bool {
	_, ok := msg.KeySegments(lowerASCII(key), strings.Trim(w.prefix, "/"))
	return ok
}

func (w *Watcher) setUp() {
	if !w.up.Swap(true) {
		w.downSince.Store(0)
		w.metrics.watchUp.Set(1)
	}
}

func (w *Watcher) setDown(err error) {
	if w.up.Swap(false) {
		w.downSince.Store(time.Now().UnixNano())
		w.log.Error("etcd unreachable; answering from the last records loaded", "err", err, "records", w.index.Len())
	}
	w.metrics.watchUp.Set(0)
}

// Status says whether answers are complete and current, for /ready.
func (w *Watcher) Status() (ready bool, detail string) {
	switch {
	case !w.index.Loaded():
		return false, "waiting for the first list of records from etcd"
	case !w.up.Load():
		since := time.Unix(0, w.downSince.Load()).UTC().Format(time.RFC3339)
		return true, fmt.Sprintf("stale: etcd unreachable since %s; serving the %d records last loaded", since, w.index.Len())
	default:
		return true, "ok" + w.noSpaceNote()
	}
}

// noSpaceNote tells /ready about the NOSPACE alarm, or is empty. It does
// not make skydns unready: every record etcd holds is still served.
func (w *Watcher) noSpaceNote() string {
	return w.noSpace.Note("kube2sky's writes refused, records may be stale")
}
