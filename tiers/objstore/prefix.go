package objstore

import (
	"context"
	"strings"
)

// WithPrefix returns a view of s in which every key is prefix+key, and
// listings strip prefix: a node's own namespace inside a shared bucket.
// Closing the view does not close s.
func WithPrefix(s Store, prefix string) Store { return prefixed{s: s, p: prefix} }

type prefixed struct {
	s Store
	p string
}

// key validates key before prefixing it: "" must stay invalid, not become
// the prefix itself.
func (v prefixed) key(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return v.p + key, nil
}

func (v prefixed) Put(ctx context.Context, key string, body []byte, cond Cond) (string, error) {
	k, err := v.key(key)
	if err != nil {
		return "", err
	}
	return v.s.Put(ctx, k, body, cond)
}

func (v prefixed) Get(ctx context.Context, key string) ([]byte, string, error) {
	k, err := v.key(key)
	if err != nil {
		return nil, "", err
	}
	return v.s.Get(ctx, k)
}

func (v prefixed) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	k, err := v.key(key)
	if err != nil {
		return nil, err
	}
	return v.s.GetRange(ctx, k, off, n)
}

func (v prefixed) Delete(ctx context.Context, key string) error {
	k, err := v.key(key)
	if err != nil {
		return err
	}
	return v.s.Delete(ctx, k)
}

func (v prefixed) List(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	return v.s.List(ctx, v.p+prefix, func(key string, size int64) error {
		return fn(strings.TrimPrefix(key, v.p), size)
	})
}

func (v prefixed) Close() error { return nil }
