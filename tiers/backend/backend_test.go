package backend

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	abs, _ := filepath.Abs("data")
	for _, tc := range []struct {
		setting, kind, path string
	}{
		{"memory", "memory", ""},
		{" memory ", "memory", ""},
		{"data", "disk", abs},
		{"./data", "disk", abs},
		{"/var/lib/brainy", "disk", "/var/lib/brainy"},
		{"file:///var/lib/brainy/", "disk", "/var/lib/brainy"},
		{"file://localhost/srv/b", "disk", "/srv/b"},
	} {
		got, err := Parse(tc.setting)
		if err != nil || got.Kind != tc.kind || got.Path != tc.path {
			t.Errorf("Parse(%q) = %+v, %v; want %s %s", tc.setting, got, err, tc.kind, tc.path)
		}
	}
}

// TestParseErrors: every malformed setting gets one line naming the problem.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ setting, want string }{
		{"", "empty storage setting"},
		{"   ", "empty storage setting"},
		{"file://", "want file:///absolute/dir"},
		{"file://otherhost/x", "want file:///absolute/dir"},
		{"ftp://host/x", `unknown scheme "ftp"`},
		{"s3://", "s3"},
		{"s3://bucket/prefix", "cannot hold a node's data yet"},
		{"azure://container", "cannot hold a node's data yet"},
		{"gs://bucket", "cannot hold a node's data yet"},
		{"r2://bucket", "cannot hold a node's data yet"},
		{"./data-{{nodeId}}", "templates such as {{nodeId}} are not supported yet"},
	} {
		_, err := Parse(tc.setting)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) = %v; want one line containing %q", tc.setting, err, tc.want)
		}
	}
}
