package logging

import (
	"bytes"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		opts    Options
		wantErr bool
		want    string
	}{
		{Options{"info", "text"}, false, "level=INFO msg=hello"},
		{Options{"debug", "json"}, false, `"msg":"hello"`},
		{Options{"loud", "text"}, true, ""},
		{Options{"info", "xml"}, true, ""},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		log, err := New(&buf, tc.opts)
		if (err != nil) != tc.wantErr {
			t.Fatalf("%+v: err = %v", tc.opts, err)
		}
		if err != nil {
			continue
		}
		log.Debug("quiet")
		log.Info("hello")
		if !strings.Contains(buf.String(), tc.want) {
			t.Errorf("%+v: output %q lacks %q", tc.opts, buf.String(), tc.want)
		}
		if tc.opts.Level == "info" && strings.Contains(buf.String(), "quiet") {
			t.Errorf("debug line logged at info")
		}
	}
}
