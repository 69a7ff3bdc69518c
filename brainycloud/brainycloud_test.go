package brainycloud_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/soullabs/brainy"
	"github.com/soullabs/brainy/brainycloud"
	"github.com/soullabs/brainy/tiers/objstore/objstoretest"
)

// The S3 cases run against versitygw, provisioned by objstoretest (skipped
// outside CI when it cannot be).
func TestMain(m *testing.M) { os.Exit(objstoretest.Main(m)) }

// addReopenGet adds an item through one Brain, closes it, and reads the
// item back through a second one: the store is durable, not memory.
func addReopenGet(t *testing.T, first, second brainy.Option) brainy.Metrics {
	t.Helper()
	ctx := context.Background()
	b, err := brainy.New(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Add(ctx, brainy.Item{ID: "john", Type: "person", Data: json.RawMessage(`{"name":"John"}`)}); err != nil {
		b.Close()
		t.Fatal(err)
	}
	m := b.Metrics()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = brainy.New(ctx, second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	it, err := b.Get(ctx, "john")
	if err != nil {
		t.Fatalf("after a restart: %v", err)
	}
	if string(it.Data) != `{"name":"John"}` {
		t.Fatalf("after a restart: data %s", it.Data)
	}
	return m
}

// A directory is the same store through brainycloud as through brainy.
func TestDirectory(t *testing.T) {
	dir := t.TempDir()
	m := addReopenGet(t, brainycloud.WithStorage(dir), brainy.WithStorage(dir))
	if m.Storage.Backend != "disk" || m.Storage.Location != dir {
		t.Fatalf("storage %s at %q, want disk at %q", m.Storage.Backend, m.Storage.Location, dir)
	}
	dir = t.TempDir()
	m = addReopenGet(t, brainy.WithStorage(dir), brainycloud.WithStorage("file://"+filepath.ToSlash(dir)))
	if m.Storage.Backend != "disk" {
		t.Fatalf("storage %s, want disk", m.Storage.Backend)
	}
}

// brainycloud.WithStorage reads every setting of brainy.WithStorage as it
// does: the same directory, or an error from both.
func TestSameSettingsAsBrainy(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	t.Chdir(base)
	for _, setting := range []string{"memory", " memory ", "data", "./a/../b", base + "/abs", "file://" + base + "/f",
		"file://localhost" + base + "/g", "n-{{nodeId}}", "file://" + base + "/m-{{nodeId}}", "node-{{nodeId}}/{{nodeId}}"} {
		local, err := brainy.New(ctx, brainy.WithStorage(setting))
		if err != nil {
			t.Errorf("brainy.WithStorage(%q): %v", setting, err)
			continue
		}
		lm := local.Metrics().Storage
		local.Close()
		cloud, err := brainy.New(ctx, brainycloud.WithStorage(setting))
		if err != nil {
			t.Errorf("brainycloud.WithStorage(%q): %v", setting, err)
			continue
		}
		cm := cloud.Metrics().Storage
		cloud.Close()
		if lm.Backend != cm.Backend || lm.Location != cm.Location {
			t.Errorf("%q: brainy opens %s at %q, brainycloud %s at %q", setting, lm.Backend, lm.Location, cm.Backend, cm.Location)
		}
	}
	for _, setting := range []string{"", " ", "{{x}}", "a}}", "file://host/x", "file://", "ftp://x", "mem://"} {
		for name, opt := range map[string]brainy.Option{"brainy": brainy.WithStorage(setting), "brainycloud": brainycloud.WithStorage(setting)} {
			if b, err := brainy.New(ctx, opt); err == nil {
				b.Close()
				t.Errorf("%s.WithStorage(%q) opened a store", name, setting)
			}
		}
	}
}

func TestMemory(t *testing.T) {
	ctx := context.Background()
	b, err := brainy.New(ctx, brainycloud.WithStorage("memory"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if m := b.Metrics(); m.Storage.Backend != "memory" || m.Storage.Location != "memory" {
		t.Fatalf("storage %s at %q, want memory", m.Storage.Backend, m.Storage.Location)
	}
}

func TestBadSettings(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, opt := range []brainy.Option{
		brainycloud.WithStorage(""),
		brainycloud.WithStorage("ftp://host/dir"),
		brainycloud.WithStorage("s3://no"), // bucket too short
		brainycloud.WithStorage("./{{hostname}}"),
		brainycloud.WithTiered("memory", "s3://bucket", ""),
		brainycloud.WithTiered(dir, dir, ""),
		brainycloud.WithTiered(dir, "", ""),
	} {
		if b, err := brainy.New(ctx, opt); err == nil {
			b.Close()
			t.Errorf("New accepted a bad setting")
		} else if strings.Contains(err.Error(), "import") {
			t.Errorf("brainycloud sends the caller to itself: %v", err)
		}
	}
}

// An object-store URL reaches the S3 adapter (here: a port where nothing
// listens), instead of the error of brainy.WithStorage.
func TestObjectStoreIsOpened(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "brainycloud-test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "brainycloud-test")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	setting := "s3://brainy-test/p?region=us-east-1&endpoint=" + objstoretest.UnreachableURL(t)
	b, err := brainy.New(ctx, brainycloud.WithStorage(setting))
	if err == nil {
		b.Close()
		t.Fatal("New opened an S3 store where nothing listens")
	}
	if strings.Contains(err.Error(), "brainycloud") || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("New did not try the S3 endpoint: %v", err)
	}
	t.Logf("as expected: %v", err)
}

// s3Setting returns the storage URL of a fresh prefix on versitygw and sets
// its credentials in the environment.
func s3Setting(t *testing.T) string {
	e := objstoretest.Use(t, objstoretest.S3)
	t.Setenv("AWS_ACCESS_KEY_ID", e["BRAINY_TEST_S3_ACCESS_KEY"])
	t.Setenv("AWS_SECRET_ACCESS_KEY", e["BRAINY_TEST_S3_SECRET_KEY"])
	return fmt.Sprintf("s3://%s/brainycloud-%s?endpoint=%s&region=%s", e["BRAINY_TEST_S3_BUCKET"],
		strings.ToLower(rand.Text()[:10]), e["BRAINY_TEST_S3_ENDPOINT"], e["BRAINY_TEST_S3_REGION"])
}

func TestS3(t *testing.T) {
	setting := s3Setting(t)
	m := addReopenGet(t, brainycloud.WithStorage(setting), brainycloud.WithStorage(setting))
	if m.Storage.Location != setting {
		t.Errorf("storage location %q, want %q", m.Storage.Location, setting)
	}
	if m.Storage.ObjectRequests == nil || m.Storage.ObjectRequests.Puts == 0 {
		t.Errorf("object requests %+v, want puts", m.Storage.ObjectRequests)
	}
}

func TestTieredS3(t *testing.T) {
	hot, warm := t.TempDir(), s3Setting(t)
	m := addReopenGet(t, brainycloud.WithTiered(hot, warm, ""), brainycloud.WithTiered(hot, warm, ""))
	if m.Storage.Backend != "tiered" || len(m.Storage.Tiers) != 2 {
		t.Errorf("storage %s with tiers %+v, want tiered with hot and warm", m.Storage.Backend, m.Storage.Tiers)
	}
}
