// Package session lets a benchmark command use the test harness, which
// starts etcd, a kube-apiserver and the project's binaries for a
// testing.TB: a Session is that testing.TB outside go test.
package session

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// Session implements the testing.TB methods the harness calls (the
// embedded interface stays nil: any other method panics). Cleanups run in
// reverse at the end of the scope that registered them (Mark, Unwind); a
// fatal error runs them all and ends the command.
type Session struct {
	testing.TB
	name     string // Prefixes fatal errors: the command's name.
	root     string
	ctx      context.Context
	cancel   context.CancelFunc
	cleanups []func()
	failed   bool
}

// New is a session of the command name, with a temporary directory of its
// own that its last Unwind removes.
func New(name string) (*Session, error) {
	root, err := os.MkdirTemp("", name+"-")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Session{name: name, root: root, ctx: ctx, cancel: cancel}
	s.Cleanup(func() { os.RemoveAll(root) })
	s.Cleanup(cancel)
	return s, nil
}

func (s *Session) Helper()                 {}
func (s *Session) Failed() bool            { return s.failed }
func (s *Session) Cleanup(f func())        { s.cleanups = append(s.cleanups, f) }
func (s *Session) Logf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (s *Session) Log(a ...any)            { fmt.Fprintln(os.Stderr, a...) }
func (s *Session) Fatal(a ...any)          { s.die(fmt.Sprint(a...)) }
func (s *Session) Fatalf(f string, a ...any) {
	s.die(fmt.Sprintf(f, a...))
}

// Context ends when the session does, as a test's when it ends.
func (s *Session) Context() context.Context { return s.ctx }

// TempDir is a new directory below the session's, removed at its end.
func (s *Session) TempDir() string {
	dir, err := os.MkdirTemp(s.root, "")
	if err != nil {
		s.Fatal(err)
	}
	return dir
}

// Mark is the point a later Unwind returns to.
func (s *Session) Mark() int { return len(s.cleanups) }

// Unwind runs the cleanups registered since mark, newest first.
func (s *Session) Unwind(mark int) {
	for len(s.cleanups) > mark {
		f := s.cleanups[len(s.cleanups)-1]
		s.cleanups = s.cleanups[:len(s.cleanups)-1]
		f()
	}
}

func (s *Session) die(msg string) {
	s.failed = true
	fmt.Fprintln(os.Stderr, s.name+":", msg)
	s.Unwind(0)
	os.Exit(1)
}
