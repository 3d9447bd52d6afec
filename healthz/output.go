package healthz

import (
	"fmt"
	"unicode/utf8"
)

// MaxOutput is how many bytes of a command's combined output exec-healthz
// keeps, logs and serves in a 503 body. The legacy sidecar kept all of it,
// so a command that printed without end grew the process without end, and
// a kubelet reads only the first 10 KiB of a probe's body anyway.
const MaxOutput = 4 << 10

// tail keeps the last limit bytes written to it, and how many it dropped:
// a failing command's last lines are the ones that say why it failed.
type tail struct {
	limit int
	buf   []byte
	cut   int
}

func newTail(limit int) *tail { return &tail{limit: limit} }

// Write keeps the last limit bytes of everything written so far; it never
// fails, so the command's output is always drained.
func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.cut += over
		t.buf = t.buf[:copy(t.buf, t.buf[over:])]
	}
	return len(p), nil
}

// Bytes is the kept output, after a line saying how much was cut when the
// bound was hit. A cut through a UTF-8 sequence drops its remaining bytes.
func (t *tail) Bytes() []byte {
	if t.cut == 0 {
		return t.buf
	}
	kept := t.buf
	for len(kept) > 0 && !utf8.RuneStart(kept[0]) {
		kept = kept[1:]
	}
	marker := fmt.Sprintf("[exec-healthz: output cut to its last %d bytes, %d before them dropped]\n", len(kept), len(t.buf)-len(kept)+t.cut)
	return append([]byte(marker), kept...)
}

// Cut reports whether the bound was hit.
func (t *tail) Cut() bool { return t.cut > 0 }
