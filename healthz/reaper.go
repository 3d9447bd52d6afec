package healthz

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
)

// Reaper is the only code in exec-healthz that waits for child processes.
//
// exec-healthz is PID 1 of its container, so every process a probe command
// orphans (the "sleep" of "sleep 30 & echo ok") becomes its child and stays
// a zombie until it is waited for. It is also a child subreaper (see
// becomeSubreaper), so the same holds when it is not PID 1.
//
// Waiting for any child (wait4(-1)) also collects the probe command itself,
// whose status os/exec's Cmd.Wait would then never see: the race between a
// global reaper and os/exec. So nothing calls Cmd.Wait. The reaper is the
// one waiter: a command is started under the reaper's lock and registered by
// pid before the lock is released, and the reaper waits only while holding
// that lock, so it cannot collect a command before knowing whose it is. A
// registered pid's status goes to its channel; any other pid is an orphan,
// counted and dropped.
type Reaper struct {
	log     *slog.Logger
	orphans prometheus.Counter

	mu      sync.Mutex
	waiting map[int]chan<- syscall.WaitStatus
}

// NewReaper returns a reaper that counts orphans in metrics.
func NewReaper(log *slog.Logger, metrics *Metrics) *Reaper {
	return &Reaper{log: log, orphans: metrics.orphans, waiting: map[int]chan<- syscall.WaitStatus{}}
}

// While reaps children while f runs, and returns f's error once f has
// returned and reaping has stopped. Every command started through Shell
// must have been collected by then (Shell returns only after that), since
// nothing else will wait for it.
func (r *Reaper) While(ctx context.Context, f func(context.Context) error) error {
	if err := becomeSubreaper(); err != nil {
		r.log.Warn("not a child subreaper: orphans of probe commands are reaped only when exec-healthz is PID 1", "err", err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		r.loop(sigs, stop)
	}()
	err := f(ctx)
	close(stop)
	<-stopped
	return err
}

// loop reaps once at start, for children that ended before SIGCHLD was
// watched, then on every SIGCHLD. Signals coalesce, so each pass collects
// every child that has ended, not one.
func (r *Reaper) loop(sigs <-chan os.Signal, stop <-chan struct{}) {
	for {
		r.reap()
		select {
		case <-stop:
			return
		case <-sigs:
		}
	}
}

func (r *Reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if pid <= 0 { // 0: children left, none ended; ECHILD: none at all.
			return
		}
		if ch, ok := r.waiting[pid]; ok {
			delete(r.waiting, pid)
			ch <- ws // Buffered: the reaper never blocks on a prober.
			continue
		}
		r.orphans.Inc()
		r.log.Debug("reaped an orphan", "pid", pid, "status", exitError(ws))
	}
}

// start starts cmd and registers it, both under the lock (see Reaper).
// Its wait status arrives on the returned channel.
func (r *Reaper) start(cmd *exec.Cmd) (<-chan syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiting[cmd.Process.Pid] = ch
	return ch, nil
}
