package main

import benchsession "github.com/skypod/skypod/test/bench/session"

// session is the harness's testing.TB outside go test, shared with the
// other benchmark commands.
type session = benchsession.Session

func newSession() (*session, error) { return benchsession.New("bench-attack") }
