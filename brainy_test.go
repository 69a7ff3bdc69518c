package brainy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/memory"
)

func TestUpdateMissingIsNotFound(t *testing.T) {
	ctx := context.Background()
	b, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Update(ctx, Item{ID: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update of a missing item: %v", err)
	}
	if err := b.Delete(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Delete of a missing item: %v", err)
	}
}

func TestTenantsAreSeparate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := New(ctx, WithStorage(dir), WithTenant("a"))
	if err != nil {
		t.Fatal(err)
	}
	a.Add(ctx, Item{ID: "x", Data: json.RawMessage(`1`)})
	a.Close()
	b, err := New(ctx, WithStorage(dir), WithTenant("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Get(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("tenant b sees a's item: %v", err)
	}
}

func TestBadOptions(t *testing.T) {
	ctx := context.Background()
	for _, opts := range [][]Option{
		{WithStorage("s3://bucket")},
		{WithStorage("")},
		{WithTenant("bad tenant")},
	} {
		if b, err := New(ctx, opts...); err == nil {
			b.Close()
			t.Errorf("New accepted %v", opts)
		}
	}
	dir := t.TempDir()
	b, err := New(ctx, WithStorage(dir), WithPartitions(8))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := New(ctx, WithStorage(dir), WithPartitions(16)); err == nil {
		t.Fatal("reopening with another partition count was accepted")
	}
}

// An object-store URL fails with an error that names the package which
// opens object stores, and how to call it.
func TestObjectStoreNeedsBrainycloud(t *testing.T) {
	ctx := context.Background()
	for _, setting := range []string{"s3://bucket", "s3://bucket/p?endpoint=http://127.0.0.1:9000", "r2://bucket",
		"gs://bucket/p", "azure://container", "cloud://bucket/{{nodeId}}"} {
		b, err := New(ctx, WithStorage(setting))
		if err == nil {
			b.Close()
			t.Fatalf("WithStorage(%q) opened a store", setting)
		}
		want := fmt.Sprintf(`import "github.com/soullabs/brainy/brainycloud" and use brainycloud.WithStorage(%q)`, setting)
		if !strings.Contains(err.Error(), want) {
			t.Errorf("WithStorage(%q): error %q does not say %q", setting, err, want)
		}
	}
	for _, setting := range []string{"ftp://host/dir", "mem://", "", "  ", "./{{hostname}}", "file://host/dir"} {
		if b, err := New(ctx, WithStorage(setting)); err == nil {
			b.Close()
			t.Errorf("WithStorage(%q) opened a store", setting)
		}
	}
}

// The root package links no cloud SDK: embedding Brainy with memory or a
// directory must not cost the AWS, Google Cloud and Azure SDKs, which come
// only with brainycloud.
func TestNoCloudSDKs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	out, err := exec.Command(gocmd, "list", "-deps", "-f", "{{.ImportPath}} {{with .Module}}{{.Path}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	cloud := []string{"github.com/aws/aws-sdk-go-v2", "github.com/aws/smithy-go", "github.com/Azure/azure-sdk-for-go",
		"cloud.google.com/go", "google.golang.org/api"}
	ours := []string{"github.com/soullabs/brainy/tiers/backend", "github.com/soullabs/brainy/tiers/s3",
		"github.com/soullabs/brainy/tiers/gcs", "github.com/soullabs/brainy/tiers/azure", cloudPackage}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 10 || !strings.Contains(string(out), "github.com/soullabs/brainy/core ") {
		t.Fatalf("go list -deps printed no dependency list:\n%s", out)
	}
	var bad []string // one line per offending module or package
	seen := map[string]bool{}
	for _, line := range lines {
		pkg, mod, _ := strings.Cut(line, " ")
		for _, c := range cloud {
			if (mod == c || strings.HasPrefix(mod, c+"/")) && !seen[mod] {
				seen[mod] = true
				bad = append(bad, fmt.Sprintf("cloud SDK module %s (e.g. package %s)", mod, pkg))
			}
		}
		for _, o := range ours {
			if pkg == o {
				bad = append(bad, "package "+pkg+", which links the cloud SDKs")
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("package brainy depends on:\n\t%s\nobject stores belong in %s", strings.Join(bad, "\n\t"), cloudPackage)
	}
}

// countingStore is a tiers.Store that counts its Close calls.
type countingStore struct {
	tiers.Store
	closes int
}

func (s *countingStore) Close() error { s.closes++; return s.Store.Close() }

func TestWithStore(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	st := &countingStore{Store: memory.New()}
	var got StoreConfig
	b, err := New(ctx, WithLogger(logger), WithStorage(t.TempDir()), WithStore(func(_ context.Context, cfg StoreConfig) (tiers.Store, error) {
		got = cfg
		return st, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got.Logger != logger {
		t.Errorf("the opener got logger %v, want the one of WithLogger", got.Logger)
	}
	if _, err := b.Add(ctx, Item{ID: "x"}); err != nil {
		t.Fatal(err)
	}
	if m := b.Metrics(); m.Storage.Backend != "memory" || m.Storage.Items != 1 {
		t.Errorf("storage %+v, want the memory store with 1 item", m.Storage)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if st.closes != 1 {
		t.Errorf("Close closed the store %d times, want 1", st.closes)
	}

	// The last of WithStore and WithStorage wins.
	dir := t.TempDir()
	b, err = New(ctx, WithStore(func(context.Context, StoreConfig) (tiers.Store, error) {
		t.Error("a WithStore that a later WithStorage overrides was called")
		return memory.New(), nil
	}), WithStorage(dir))
	if err != nil {
		t.Fatal(err)
	}
	if m := b.Metrics(); m.Storage.Backend != "disk" || m.Storage.Location != dir {
		t.Errorf("storage %s at %q, want disk at %q", m.Storage.Backend, m.Storage.Location, dir)
	}
	b.Close()

	// Failures: the opener's error, nil, and a store that core refuses
	// (which New closes).
	boom := errors.New("boom")
	if _, err := New(ctx, WithStore(func(context.Context, StoreConfig) (tiers.Store, error) { return nil, boom })); !errors.Is(err, boom) {
		t.Errorf("New with a failing opener: %v", err)
	}
	if _, err := New(ctx, WithStore(nil)); err == nil {
		t.Error("New accepted WithStore(nil)")
	}
	if _, err := New(ctx, WithStore(func(context.Context, StoreConfig) (tiers.Store, error) { return nil, nil })); err == nil {
		t.Error("New accepted an opener that returned no store")
	}
	st = &countingStore{Store: memory.New()}
	if _, err := New(ctx, WithPartitions(-1), WithStore(func(context.Context, StoreConfig) (tiers.Store, error) { return st, nil })); err == nil {
		t.Error("New accepted partitions -1")
	} else if st.closes != 1 {
		t.Errorf("New failed (%v) and closed the store %d times, want 1", err, st.closes)
	}
}

// Directory settings: relative, file:// and {{nodeId}} (the host name).
func TestDirectorySettings(t *testing.T) {
	ctx := context.Background()
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no host name:", err)
	}
	base := t.TempDir()
	t.Chdir(base)
	for setting, want := range map[string]string{
		"data":                               filepath.Join(base, "data"),
		" ./rel/../data2 ":                   filepath.Join(base, "data2"),
		"file://" + filepath.Join(base, "f"): filepath.Join(base, "f"),
		"node-{{nodeId}}":                    filepath.Join(base, "node-"+host),
		"file://" + filepath.Join(base, "n-{{nodeId}}"): filepath.Join(base, "n-"+host),
	} {
		b, err := New(ctx, WithStorage(setting))
		if err != nil {
			t.Errorf("WithStorage(%q): %v", setting, err)
			continue
		}
		if m := b.Metrics(); m.Storage.Backend != "disk" || m.Storage.Location != want {
			t.Errorf("WithStorage(%q): storage %s at %q, want disk at %q", setting, m.Storage.Backend, m.Storage.Location, want)
		}
		b.Close()
		if _, err := os.Stat(want); err != nil {
			t.Errorf("WithStorage(%q): %v", setting, err)
		}
	}
}

func BenchmarkAdd(b *testing.B) {
	for _, storage := range []string{"memory", "disk"} {
		b.Run(storage, func(b *testing.B) {
			ctx := context.Background()
			s := storage
			if s == "disk" {
				s = b.TempDir()
			}
			brain, err := New(ctx, WithStorage(s))
			if err != nil {
				b.Fatal(err)
			}
			defer brain.Close()
			data := json.RawMessage(`{"name":"John","age":30,"tags":["a","b"]}`)
			b.ReportAllocs()
			// Parallel callers: durable writes share syncs (group commit).
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := brain.Add(ctx, Item{Type: "person", Data: data}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func BenchmarkGet(b *testing.B) {
	for _, storage := range []string{"memory", "disk"} {
		b.Run(storage, func(b *testing.B) {
			ctx := context.Background()
			s := storage
			if s == "disk" {
				s = b.TempDir()
			}
			brain, err := New(ctx, WithStorage(s))
			if err != nil {
				b.Fatal(err)
			}
			defer brain.Close()
			const n = 10_000
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("item-%05d", i)
				if _, err := brain.Add(ctx, Item{ID: ids[i], Type: "person", Data: json.RawMessage(`{"name":"John"}`)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if _, err := brain.Get(ctx, ids[i%n]); err != nil {
						b.Error(err)
						return
					}
					i += 7
				}
			})
		})
	}
}
