package raftlog

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
)

// memFS is a directory in memory that knows what was synced: crash
// returns what a machine crash could leave of it. Names created or
// removed since the last SyncDir may or may not be there; a file keeps
// what was synced, plus any prefix of what was written after, in which a
// byte may be garbage.
type memFS struct {
	mu      sync.Mutex
	files   map[string]*memNode
	durable map[string]*memNode // the names as of the last SyncDir
	// budget counts the mutating calls left before the machine "dies":
	// that call and every later one fail with errCrash. Negative: never.
	budget int
}

type memNode struct {
	data, synced []byte
}

var errCrash = errors.New("memfs: crashed")

func newMemFS() *memFS {
	return &memFS{files: map[string]*memNode{}, durable: map[string]*memNode{}, budget: -1}
}

// mutate charges one mutating call against the budget.
func (m *memFS) mutate() error {
	if m.budget == 0 {
		return errCrash
	}
	if m.budget > 0 {
		m.budget--
	}
	return nil
}

func (m *memFS) MkdirAll(string) error { return nil }

func (m *memFS) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for n := range m.files {
		if filepath.Dir(n) == filepath.Clean(dir) {
			names = append(names, filepath.Base(n))
		}
	}
	slices.Sort(names)
	return names, nil
}

func (m *memFS) Create(name string) (file, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.mutate(); err != nil {
		return nil, err
	}
	if m.files[name] != nil {
		return nil, fs.ErrExist
	}
	n := &memNode{}
	m.files[name] = n
	return &memFile{m, n}, nil
}

func (m *memFS) OpenRW(name string) (file, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.files[name]
	if n == nil {
		return nil, fs.ErrNotExist
	}
	return &memFile{m, n}, nil
}

func (m *memFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.mutate(); err != nil {
		return err
	}
	if m.files[name] == nil {
		return fs.ErrNotExist
	}
	delete(m.files, name)
	return nil
}

func (m *memFS) SyncDir(string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.mutate(); err != nil {
		return err
	}
	m.durable = cloneNames(m.files)
	return nil
}

func cloneNames(in map[string]*memNode) map[string]*memNode {
	out := make(map[string]*memNode, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func (m *memFS) Lock(string) (io.Closer, error) { return io.NopCloser(nil), nil }

// crash returns the directory as a machine crash could leave it now.
func (m *memFS) crash(rng *rand.Rand) *memFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := newMemFS()
	var names []string
	for n := range m.files {
		names = append(names, n)
	}
	for n := range m.durable {
		if m.files[n] == nil {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		cur, dur := m.files[name], m.durable[name]
		node := cur
		switch {
		case cur != nil && dur == cur:
		case cur != nil && dur == nil, cur == nil && dur != nil: // created or removed, not synced
			if rng.IntN(2) == 0 {
				continue
			}
			if cur == nil {
				node = dur
			}
		default: // replaced: either
			if rng.IntN(2) == 0 {
				node = dur
			}
		}
		data := slices.Clone(node.synced)
		if extra, ok := bytesAfter(node.data, node.synced); ok && len(extra) > 0 {
			kept := extra[:rng.IntN(len(extra)+1)]
			start := len(data)
			data = append(data, kept...)
			if len(kept) > 0 && rng.IntN(3) == 0 {
				data[start+rng.IntN(len(kept))] ^= byte(1 + rng.IntN(255)) // garbage in an unsynced page
			}
		}
		out.files[name] = &memNode{data: data, synced: slices.Clone(data)}
	}
	out.durable = cloneNames(out.files)
	return out
}

// bytesAfter returns what data holds beyond prefix, if it extends it.
func bytesAfter(data, prefix []byte) ([]byte, bool) {
	if len(data) < len(prefix) || string(data[:len(prefix)]) != string(prefix) {
		return nil, false
	}
	return data[len(prefix):], true
}

// setFile replaces a file's content, durably.
func (m *memFS) setFile(name string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[name] = &memNode{data: slices.Clone(data), synced: slices.Clone(data)}
	m.durable = cloneNames(m.files)
}

func (m *memFS) file(name string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.files[name]; n != nil {
		return slices.Clone(n.data)
	}
	return nil
}

type memFile struct {
	fs *memFS
	n  *memNode
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.mutate(); err != nil {
		// The machine died during the write: part of it may be there.
		k := len(p) / 2
		f.n.data = append(f.n.data[:min(int(off), len(f.n.data))], p[:k]...)
		return k, err
	}
	if int(off) > len(f.n.data) {
		f.n.data = append(f.n.data, make([]byte, int(off)-len(f.n.data))...)
	}
	end := int(off) + len(p)
	if end > len(f.n.data) {
		f.n.data = append(f.n.data, make([]byte, end-len(f.n.data))...)
	}
	copy(f.n.data[off:], p)
	return len(p), nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return int64(len(f.n.data)), nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.mutate(); err != nil {
		return err
	}
	if int(size) < len(f.n.data) {
		f.n.data = f.n.data[:size:size]
	} else {
		f.n.data = append(f.n.data, make([]byte, int(size)-len(f.n.data))...)
	}
	return nil
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.fs.mutate(); err != nil {
		return err
	}
	f.n.synced = slices.Clone(f.n.data)
	return nil
}

func (f *memFile) Close() error { return nil }
