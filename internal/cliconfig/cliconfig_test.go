package cliconfig

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "brainy.yaml")
	if err := os.WriteFile(file, []byte("storage: /from/file\npartitions: 16\nwrite_timeout: 3s\nbind: file-host\npeers: [a, b]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	storage := fs.String("storage", "./default", "")
	parts := fs.Int("partitions", 64, "")
	wt := fs.Duration("write-timeout", time.Second, "")
	bind := fs.String("bind", "127.0.0.1", "")
	peers := fs.String("peers", "", "")
	api := fs.String("api-keys", "", "")
	fs.String("config", "", "")
	env := map[string]string{"BRAINY_STORAGE": "/from/env", "BRAINY_CONFIG": file, "BRAINY_BIND": "env-host"}
	src, err := Parse(fs, []string{"--bind", "flag-host"}, "BRAINY_", "config", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if *bind != "flag-host" || src["bind"] != FromFlag {
		t.Errorf("flag should beat env and file: bind=%q (%s)", *bind, src["bind"])
	}
	if *storage != "/from/env" || src["storage"] != FromEnv {
		t.Errorf("env should beat file: storage=%q (%s)", *storage, src["storage"])
	}
	if *parts != 16 || *wt != 3*time.Second || src["partitions"] != FromFile {
		t.Errorf("file should beat default: partitions=%d write-timeout=%v", *parts, *wt)
	}
	if *peers != "a,b" {
		t.Errorf("a list in the file should become a comma-separated value: %q", *peers)
	}
	if *api != "" || src["api-keys"] != FromDefault {
		t.Errorf("default: api-keys=%q (%s)", *api, src["api-keys"])
	}
}

func TestErrorsNameTheirSource(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	os.WriteFile(file, []byte("partitons: 3\n"), 0o600)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--config", file}, nil, `unknown setting "partitons"`},
		{nil, map[string]string{"BRAINY_PARTITIONS": "many"}, "BRAINY_PARTITIONS: invalid value"},
		{[]string{"stray"}, nil, `unexpected argument "stray"`},
		{[]string{"--config", filepath.Join(dir, "missing.yaml")}, nil, "config file"},
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.Int("partitions", 64, "")
		fs.String("config", "", "")
		_, err := Parse(fs, tc.args, "BRAINY_", "config", func(k string) string { return tc.env[k] })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%v, %v) = %v; want an error containing %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestUsageListsEnvAndDefault(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Int("cache-size", 42, "bytes of `cache`")
	var b strings.Builder
	Usage(&b, fs, "BRAINY_", "Usage: x")
	for _, want := range []string{"--cache-size cache", "default: 42", "env: BRAINY_CACHE_SIZE"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, b.String())
		}
	}
}

// TestNestedMap: the tiered storage form of a config file,
// storage: {hot: DIR, warm: URL}, sets storage-hot and storage-warm.
func TestNestedMap(t *testing.T) {
	file := filepath.Join(t.TempDir(), "brainy.yaml")
	if err := os.WriteFile(file, []byte("storage:\n  hot: /ssd/brainy\n  warm: s3://bucket/brainy\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	hot := fs.String("storage-hot", "", "")
	warm := fs.String("storage-warm", "", "")
	fs.String("config", "", "")
	if _, err := Parse(fs, []string{"--config", file}, "BRAINY_", "config", func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if *hot != "/ssd/brainy" || *warm != "s3://bucket/brainy" {
		t.Fatalf("storage-hot=%q storage-warm=%q", *hot, *warm)
	}
}
