package main

import (
	"fmt"
	"os"
	"testing"
)

// session lets a command use the test harness, which starts etcd and the
// project's binaries for a testing.TB: the harness calls only the methods
// defined here (the embedded interface stays nil). Cleanups run in
// reverse at the end of the scope that registered them; a fatal error
// runs them all and ends the command.
type session struct {
	testing.TB
	root     string
	cleanups []func()
	failed   bool
}

func newSession() (*session, error) {
	root, err := os.MkdirTemp("", "bench-attack-")
	if err != nil {
		return nil, err
	}
	s := &session{root: root}
	s.Cleanup(func() { os.RemoveAll(root) })
	return s, nil
}

func (s *session) Helper()                 {}
func (s *session) Failed() bool            { return s.failed }
func (s *session) Cleanup(f func())        { s.cleanups = append(s.cleanups, f) }
func (s *session) Logf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (s *session) Fatal(a ...any)          { s.die(fmt.Sprint(a...)) }
func (s *session) Fatalf(f string, a ...any) {
	s.die(fmt.Sprintf(f, a...))
}

// TempDir is a new directory below the session's, removed at its end.
func (s *session) TempDir() string {
	dir, err := os.MkdirTemp(s.root, "")
	if err != nil {
		s.Fatal(err)
	}
	return dir
}

// mark is the point a later unwind returns to.
func (s *session) mark() int { return len(s.cleanups) }

// unwind runs the cleanups registered since mark, newest first.
func (s *session) unwind(mark int) {
	for len(s.cleanups) > mark {
		f := s.cleanups[len(s.cleanups)-1]
		s.cleanups = s.cleanups[:len(s.cleanups)-1]
		f()
	}
}

func (s *session) die(msg string) {
	s.failed = true
	fmt.Fprintln(os.Stderr, "bench-attack:", msg)
	s.unwind(0)
	os.Exit(1)
}
