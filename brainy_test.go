package brainy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
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
