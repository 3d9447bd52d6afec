package healthz

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Runner runs one command line, writing its combined output to out.
type Runner func(ctx context.Context, cmd string, out io.Writer) error

// outputGrace bounds how long output is still read once the command's
// group is dead: a process that left the group (setsid) may hold the pipe.
const outputGrace = time.Second

// Shell is exec-healthz's Runner, usable while r.While runs. It runs line
// through "sh -c", as exec-healthz always has, so redirections such as the
// legacy manifest's ">/dev/null" work as written.
//
// The command gets a process group of its own, and the whole group is
// killed (SIGKILL) when ctx ends, so a timeout takes the command's children
// with it, not only the shell. The group is killed again once the shell has
// exited: a probe is a check, and what it leaves behind (the background
// job of "sleep 30 & echo ok") would otherwise pile up in the container,
// one more every period. A process that left the group (setsid, a daemon)
// is not killed; it is reaped when it exits.
func (r *Reaper) Shell(ctx context.Context, line string, out io.Writer) error {
	rd, wr, err := os.Pipe()
	if err != nil {
		return err
	}
	defer rd.Close()
	cmd := exec.Command("sh", "-c", line)
	// An *os.File: the command writes the pipe itself, with no copying
	// goroutine in os/exec that only Cmd.Wait would end.
	cmd.Stdout, cmd.Stderr = wr, wr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	status, err := r.start(cmd)
	wr.Close() // Now only the command holds it: EOF once its last holder exits.
	if err != nil {
		return err
	}
	pgid := cmd.Process.Pid
	_ = cmd.Process.Release() // The reaper collects it, never os/exec.
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(out, rd)
	}()
	ws := awaitGroup(ctx, pgid, status)
	killGroup(pgid)
	_ = rd.SetReadDeadline(time.Now().Add(outputGrace))
	<-copied
	return exitError(ws)
}

// awaitGroup waits for the group leader's status, killing the group if ctx
// ends first; the leader then dies at once and its status still arrives.
func awaitGroup(ctx context.Context, pgid int, status <-chan syscall.WaitStatus) syscall.WaitStatus {
	select {
	case ws := <-status:
		return ws
	case <-ctx.Done():
		killGroup(pgid)
		return <-status
	}
}

// killGroup kills what is left of the group; ESRCH (nothing left) is fine.
// The group's id is its leader's pid, which Linux does not hand out again
// while any member, running or zombie, still has it as its group: a kill
// after the leader was reaped reaches the command's own processes, or, if
// none is left, a new group only if pids wrapped around in between.
func killGroup(pgid int) {
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// exitError words a status as os/exec's ExitError does ("exit status 1",
// "signal: killed"), as the legacy 503 body showed it; nil for success.
func exitError(ws syscall.WaitStatus) error {
	switch {
	case ws.Exited() && ws.ExitStatus() == 0:
		return nil
	case ws.Exited():
		return fmt.Errorf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Errorf("signal: %v", ws.Signal())
	default:
		return fmt.Errorf("wait status %#x", uint32(ws))
	}
}
