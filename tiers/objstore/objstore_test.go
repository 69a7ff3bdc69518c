package objstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/soullabs/brainy/tiers/objstore"
)

func TestValidKey(t *testing.T) {
	for _, c := range []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"dir/sub/file.seg", true},
		{"with space and ü", true},
		{"...", true},
		{strings.Repeat("k", objstore.MaxKeyLen), true},
		{"", false},
		{".", false},
		{"..", false},
		{"tab\there", false},
		{"nul\x00", false},
		{"del\x7f", false},
		{"bad\xff", false},
		{strings.Repeat("k", objstore.MaxKeyLen+1), false},
	} {
		t.Run(c.key, func(t *testing.T) {
			err := objstore.ValidKey(c.key)
			if (err == nil) != c.ok {
				t.Fatalf("ValidKey(%q) = %v, want ok=%v", c.key, err, c.ok)
			}
			if err != nil && !errors.Is(err, objstore.ErrInvalidArgument) {
				t.Fatalf("ValidKey(%q) = %v, not ErrInvalidArgument", c.key, err)
			}
		})
	}
}

// FuzzValidKey checks that ValidKey never panics, that what it accepts satisfies the
// documented rules, and that accepted keys round-trip through the in-memory store.
func FuzzValidKey(f *testing.F) {
	for _, k := range []string{"a", "", ".", "a/b", "ü", "\x00", "\xff", strings.Repeat("x", 1025)} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := objstore.ValidKey(key)
		if err != nil {
			if !errors.Is(err, objstore.ErrInvalidArgument) {
				t.Fatalf("ValidKey(%q) = %v, not ErrInvalidArgument", key, err)
			}
			return
		}
		if key == "" || len(key) > objstore.MaxKeyLen || !utf8.ValidString(key) || key == "." || key == ".." {
			t.Fatalf("ValidKey accepted %q", key)
		}
		for _, r := range key {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("ValidKey accepted control character %U in %q", r, key)
			}
		}
		ctx := context.Background()
		m := objstore.NewMemory()
		etag, err := m.Put(ctx, key, []byte(key), objstore.Cond{IfNoneMatch: true})
		if err != nil {
			t.Fatal(err)
		}
		got, etag2, err := m.Get(ctx, key)
		if err != nil || string(got) != key || etag2 != etag {
			t.Fatalf("Get(%q) = %q, %s, %v", key, got, etag2, err)
		}
		n := 0
		_ = m.List(ctx, key, func(k string, size int64) error {
			if k != key || size != int64(len(key)) {
				t.Fatalf("List(%q) gave %q size %d", key, k, size)
			}
			n++
			return nil
		})
		if n != 1 {
			t.Fatalf("List(%q) gave %d keys", key, n)
		}
	})
}
