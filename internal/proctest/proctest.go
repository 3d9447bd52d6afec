// Package proctest reads the process table from /proc, for tests that
// check what a program leaves behind: zombies it did not reap, children it
// did not kill.
package proctest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Process is one entry of /proc.
type Process struct {
	PID, PPID int
	State     byte     // R, S, D, Z, ... as in /proc/<pid>/stat.
	Args      []string // Empty for a zombie: the kernel has dropped them.
}

// List returns every process the caller can see. A process that ends while
// it is read is left out.
func List(tb testing.TB) []Process {
	tb.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		tb.Fatal(err)
	}
	var out []Process
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if p, ok := read(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// read parses /proc/<pid>/stat: "pid (comm) state ppid ...", where comm
// may hold spaces and parentheses, so the fields start after the last ')'.
func read(pid int) (Process, bool) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return Process{}, false
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return Process{}, false
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 2 {
		return Process{}, false
	}
	ppid, _ := strconv.Atoi(fields[1])
	cmdline, _ := os.ReadFile(filepath.Join(dir, "cmdline"))
	args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	if len(cmdline) == 0 {
		args = nil
	}
	return Process{PID: pid, PPID: ppid, State: fields[0][0], Args: args}, true
}

// Zombies counts the children of ppid that have exited and not been reaped.
func Zombies(tb testing.TB, ppid int) int {
	tb.Helper()
	n := 0
	for _, p := range List(tb) {
		if p.PPID == ppid && p.State == 'Z' {
			n++
		}
	}
	return n
}

// Running counts the processes, zombies aside, whose arguments are args.
func Running(tb testing.TB, args ...string) int {
	tb.Helper()
	n := 0
	for _, p := range List(tb) {
		if p.State != 'Z' && slices.Equal(p.Args, args) {
			n++
		}
	}
	return n
}

// SleepArg is an argument for sleep, about an hour, that no other process
// on the machine has, so a test can count its own sleeps with Running.
func SleepArg() string {
	return fmt.Sprintf("%d.%06d", 3000+os.Getpid()%1000, time.Now().UnixNano()%1_000_000)
}
