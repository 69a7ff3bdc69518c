package backend

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/soullabs/brainy/internal/nodestats"
)

func TestParse(t *testing.T) {
	abs, _ := filepath.Abs("data")
	t.Setenv("CLOUDFLARE_ACCOUNT_ID", "")
	for _, tc := range []struct {
		setting, kind, path, url string
	}{
		{"memory", "memory", "", ""},
		{" memory ", "memory", "", ""},
		{"data", "disk", abs, ""},
		{"./data", "disk", abs, ""},
		{"/var/lib/brainy", "disk", "/var/lib/brainy", ""},
		{"file:///var/lib/brainy/", "disk", "/var/lib/brainy", ""},
		{"file://localhost/srv/b", "disk", "/srv/b", ""},
		{"s3://bucket/prefix?endpoint=http://127.0.0.1:9000", "object", "", "s3://bucket/prefix?endpoint=http://127.0.0.1:9000"},
		{"gs://bucket", "object", "", "gs://bucket"},
		{"azure://container/p", "object", "", "azure://container/p"},
		{"r2://bucket/p?account=abc", "object", "", "s3://bucket/p/?endpoint=https%3A%2F%2Fabc.r2.cloudflarestorage.com&region=auto"},
		{"r2://bucket/p?endpoint=http://127.0.0.1:9000", "object", "", "s3://bucket/p/?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=auto"},
		{"r2://bucket/p?account=abc&endpoint=http://127.0.0.1:9000&region=us-east-1", "object", "", "s3://bucket/p/?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=us-east-1"},
		{"/data/{{nodeId}}", "disk", "/data/{{nodeId}}", ""},
		{"s3://bucket/{{nodeId}}", "object", "", "s3://bucket/{{nodeId}}"},
	} {
		got, err := Parse(tc.setting)
		if err != nil || got.Kind != tc.kind || got.Path != tc.path || got.URL != tc.url {
			t.Errorf("Parse(%q) = %+v, %v; want %s %q %q", tc.setting, got, err, tc.kind, tc.path, tc.url)
		}
	}
	if got, _ := Parse("s3://bucket-{{nodeId}}/x"); got.Expand("n7").URL != "s3://bucket-n7/x" {
		t.Errorf("Expand: %q", got.Expand("n7").URL)
	}
}

func TestCloudPicksProviderFromEnvironment(t *testing.T) {
	fakeMachine(t, nil)
	t.Setenv("AZURE_STORAGE_CONNECTION_STRING", "x")
	got, err := Parse("cloud://bucket/p")
	if err != nil || got.URL != "azure://bucket/p" || got.Chosen != "AZURE_STORAGE_CONNECTION_STRING is set" {
		t.Fatalf("cloud:// with Azure credentials: %+v %v", got, err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	if _, err := Parse("cloud://bucket"); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Fatalf("cloud:// with two providers' credentials: %v", err)
	}
}

func TestParseTiered(t *testing.T) {
	s, err := ParseTiered("/ssd", "s3://warm/x", "azure://cold/y")
	if err != nil || s.Kind != "tiered" || s.Hot.Path != "/ssd" || s.Warm.URL != "s3://warm/x" || s.Cold.URL != "azure://cold/y" {
		t.Fatalf("ParseTiered: %+v %v", s, err)
	}
	if s.LocalDir() != "/ssd" {
		t.Fatalf("the local directory of a tiered spec: %q", s.LocalDir())
	}
}

func TestLocalDir(t *testing.T) {
	for setting, want := range map[string]string{"/var/lib/brainy": "/var/lib/brainy", "memory": "", "s3://bucket/p": ""} {
		if s, err := Parse(setting); err != nil || s.LocalDir() != want {
			t.Errorf("LocalDir of %q: %q, %v; want %q", setting, s.LocalDir(), err, want)
		}
	}
}

// TestParseErrors: every malformed setting gets one line naming the problem.
func TestParseErrors(t *testing.T) {
	t.Setenv("CLOUDFLARE_ACCOUNT_ID", "")
	fakeMachine(t, nil)
	for _, tc := range []struct{ setting, want string }{
		{"", "empty storage setting"},
		{"   ", "empty storage setting"},
		{"file://", "want file:///absolute/dir"},
		{"file://otherhost/x", "want file:///absolute/dir"},
		{"ftp://host/x", `unknown scheme "ftp"`},
		{"s3://", "bucket"},
		{"s3://Bad_Bucket!/x", "bucket"},
		{"s3://user@bucket/x", "credentials do not belong in the URL"},
		{"s3://bucket/a//b", "empty path segment"},
		{"s3://bucket/x?region=a&region=b", "given once"},
		{"gs://b", "bucket"},
		{"r2://bucket", "Cloudflare account id"},
		{"cloud://bucket", "found no credentials"},
		{"cloud://bucket", "detected no cloud"},
		{"./data-{{node}}", "unknown template"},
		{"./data-{{nodeId}", "unknown template"},
	} {
		_, err := Parse(tc.setting)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q) = %v; want one line containing %q", tc.setting, err, tc.want)
		}
	}
	for _, tc := range []struct{ hot, warm, cold, want string }{
		{"s3://bucket-b/x", "s3://bucket-w/x", "", "must be a local directory"},
		{"/ssd", "", "", "needs storage-warm"},
		{"/ssd", "/hdd", "", "must be an object store"},
		{"/ssd", "s3://bucket-w/x", "memory", "must be an object store"},
		{"/ssd", "ftp://x", "", "unknown scheme"},
	} {
		_, err := ParseTiered(tc.hot, tc.warm, tc.cold)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseTiered(%q, %q, %q) = %v; want one line containing %q", tc.hot, tc.warm, tc.cold, err, tc.want)
		}
	}
}

// FuzzParse: any setting parses or fails with one line, never a panic.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"memory", "./data", "file:///x", "s3://bucket/p?endpoint=http://h", "r2://bucket?account=a",
		"gs://bucket-{{nodeId}}/x", "azure://c/p?create_container=true", "cloud://b", "{{nodeId}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, setting string) {
		spec, err := Parse(setting)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("a multi-line error: %q", err)
			}
			return
		}
		_ = spec.Expand("node-1").String()
	})
}

// TestLocalVolumeStats: a store on a local directory reports the free
// space of its volume.
func TestLocalVolumeStats(t *testing.T) {
	spec, err := Parse(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := Open(context.Background(), spec, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var s nodestats.Storage
	st.FillStats(&s)
	if s.Available == nil || *s.Available <= 0 {
		t.Fatalf("available: %v", s.Available)
	}
}
