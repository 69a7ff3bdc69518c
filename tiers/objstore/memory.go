package objstore

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Memory is an in-memory Store for unit tests of code built on objstore. It keeps the
// full contract of Store, including conditional writes, and is safe for concurrent use.
type Memory struct {
	mu      sync.Mutex
	objects map[string]memObject // guarded by mu
	seq     uint64               // guarded by mu; last ETag number handed out
	closed  bool                 // guarded by mu
}

type memObject struct {
	body []byte // owned by the store, never modified after Put
	etag string
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{objects: make(map[string]memObject)}
}

func (m *Memory) check(ctx context.Context) error {
	if m.closed {
		return fmt.Errorf("objstore: memory store closed: %w", ErrUnavailable)
	}
	return ctx.Err()
}

// Put implements Store.
func (m *Memory) Put(ctx context.Context, key string, body []byte, cond Cond) (string, error) {
	if err := CheckPut(key, cond); err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return "", err
	}
	cur, ok := m.objects[key]
	switch {
	case cond.IfNoneMatch && ok:
		return "", fmt.Errorf("objstore: put %q: exists: %w", key, ErrPreconditionFailed)
	case cond.IfMatch != "" && !ok:
		return "", fmt.Errorf("objstore: put %q: missing: %w", key, ErrPreconditionFailed)
	case cond.IfMatch != "" && cur.etag != cond.IfMatch:
		return "", fmt.Errorf("objstore: put %q: etag %s != %s: %w", key, cur.etag, cond.IfMatch, ErrPreconditionFailed)
	}
	m.seq++
	etag := `"` + strconv.FormatUint(m.seq, 16) + `"`
	m.objects[key] = memObject{body: append([]byte(nil), body...), etag: etag}
	return etag, nil
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, string, error) {
	if err := ValidKey(key); err != nil {
		return nil, "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, "", err
	}
	o, ok := m.objects[key]
	if !ok {
		return nil, "", fmt.Errorf("objstore: get %q: %w", key, ErrNotFound)
	}
	return append([]byte(nil), o.body...), o.etag, nil
}

// GetRange implements Store.
func (m *Memory) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if err := CheckRange(key, off, n); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	o, ok := m.objects[key]
	if !ok {
		return nil, fmt.Errorf("objstore: get range %q: %w", key, ErrNotFound)
	}
	size := int64(len(o.body))
	if off >= size {
		return []byte{}, nil
	}
	end := size
	if n < size-off {
		end = off + n
	}
	return append([]byte(nil), o.body[off:end]...), nil
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return err
	}
	delete(m.objects, key)
	return nil
}

// List implements Store. It lists a snapshot taken when it starts, so fn may call the
// store.
func (m *Memory) List(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	type entry struct {
		key  string
		size int64
	}
	m.mu.Lock()
	if err := m.check(ctx); err != nil {
		m.mu.Unlock()
		return err
	}
	var entries []entry
	for k, o := range m.objects {
		if strings.HasPrefix(k, prefix) {
			entries = append(entries, entry{k, int64(len(o.body))})
		}
	}
	m.mu.Unlock()
	sort.Slice(entries, func(i, j int) bool { return entries[i].key < entries[j].key })
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(e.key, e.size); err != nil {
			return err
		}
	}
	return nil
}

// Close implements Store; later calls fail with ErrUnavailable.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
