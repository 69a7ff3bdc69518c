package objstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/soullabs/brainy/internal/dirsync"
)

// Dir is a Store in a local directory: the object-store contract on a
// plain file system, for single-host deployments and for running the code
// built on objstore without a server.
//
// Layout: each object is one file whose name is its key escaped to
// [A-Za-z0-9._-] plus %XX, cut into 200-byte directory levels (file names
// are limited to 255 bytes, keys to 1024), with "~" closing the last level so
// that no object's file is ever another's directory. A file holds its ETag
// (length-prefixed) and then the body. Writes go to a temporary file that is
// synced and renamed over the object, so readers see the old or the new body
// and a crash leaves one of them; conditional writes hold an exclusive lock on
// DIR/.lock, so they are atomic across processes too.
type Dir struct {
	root string
	mu   sync.Mutex // serialises this process's writers; flock does it across processes
}

var _ Store = (*Dir)(nil)

// NewDir opens (creating if needed) the store in root.
func NewDir(root string) (*Dir, error) {
	if err := os.MkdirAll(filepath.Join(root, "objects"), 0o700); err != nil {
		return nil, fmt.Errorf("objstore: dir %s: %w", root, err)
	}
	return &Dir{root: root}, nil
}

const dirSegment = 200

func escapeKey(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func (d *Dir) path(key string) string {
	esc := escapeKey(key)
	var parts []string
	for len(esc) > dirSegment {
		parts = append(parts, esc[:dirSegment])
		esc = esc[dirSegment:]
	}
	parts = append(parts, esc+"~")
	return filepath.Join(append([]string{d.root, "objects"}, parts...)...)
}

func unescapeKey(rel string) (string, bool) {
	rel = strings.ReplaceAll(rel, string(filepath.Separator), "")
	if !strings.HasSuffix(rel, "~") {
		return "", false
	}
	rel = strings.TrimSuffix(rel, "~")
	var b strings.Builder
	for i := 0; i < len(rel); i++ {
		if rel[i] != '%' {
			b.WriteByte(rel[i])
			continue
		}
		if i+2 >= len(rel) {
			return "", false
		}
		v, err := hex.DecodeString(rel[i+1 : i+3])
		if err != nil {
			return "", false
		}
		b.WriteByte(v[0])
		i += 2
	}
	return b.String(), true
}

// open returns the object's file positioned at the body, its ETag and
// the body's offset in the file.
func (d *Dir) open(key string) (*os.File, string, int64, error) {
	f, err := os.Open(d.path(key))
	if err != nil {
		if os.IsNotExist(err) || isNotDir(err) {
			return nil, "", 0, fmt.Errorf("objstore: %q: %w", key, ErrNotFound)
		}
		return nil, "", 0, fmt.Errorf("objstore: %q: %w: %v", key, ErrUnavailable, err)
	}
	var n [2]byte
	if _, err := io.ReadFull(f, n[:]); err != nil {
		f.Close()
		return nil, "", 0, fmt.Errorf("objstore: %q: corrupt object file: %v", key, err)
	}
	etag := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(f, etag); err != nil {
		f.Close()
		return nil, "", 0, fmt.Errorf("objstore: %q: corrupt object file: %v", key, err)
	}
	return f, string(etag), int64(2 + len(etag)), nil
}

func isNotDir(err error) bool {
	pe, ok := err.(*fs.PathError)
	return ok && pe.Err == syscall.ENOTDIR
}

// Put implements Store.
func (d *Dir) Put(ctx context.Context, key string, body []byte, cond Cond) (string, error) {
	if err := CheckPut(key, cond); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	lock, err := os.OpenFile(filepath.Join(d.root, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("objstore: lock: %w: %v", ErrUnavailable, err)
	}
	defer lock.Close()
	if err := lockFile(lock); err != nil {
		return "", fmt.Errorf("objstore: lock: %w: %v", ErrUnavailable, err)
	}
	defer unlockFile(lock)

	if cond.IfNoneMatch || cond.IfMatch != "" {
		f, etag, _, err := d.open(key)
		exists := err == nil
		if f != nil {
			f.Close()
		}
		switch {
		case err != nil && !errors.Is(err, ErrNotFound):
			return "", err
		case cond.IfNoneMatch && exists:
			return "", fmt.Errorf("objstore: put %q: exists: %w", key, ErrPreconditionFailed)
		case cond.IfMatch != "" && (!exists || etag != cond.IfMatch):
			return "", fmt.Errorf("objstore: put %q: etag mismatch: %w", key, ErrPreconditionFailed)
		}
	}
	var rb [12]byte
	_, _ = rand.Read(rb[:])
	etag := `"` + hex.EncodeToString(rb[:]) + `"`
	p := d.path(key)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("objstore: put %q: %w: %v", key, ErrUnavailable, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("objstore: put %q: %w: %v", key, ErrUnavailable, err)
	}
	defer os.Remove(tmp.Name())
	var hdr [2]byte
	binary.BigEndian.PutUint16(hdr[:], uint16(len(etag)))
	_, err = tmp.Write(append(append(hdr[:], etag...), body...))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err == nil {
		err = dirsync.Sync(filepath.Dir(p))
	}
	if err != nil {
		return "", fmt.Errorf("objstore: put %q: %w: %v", key, ErrUnavailable, err)
	}
	return etag, nil
}

// Get implements Store.
func (d *Dir) Get(ctx context.Context, key string) ([]byte, string, error) {
	if err := ValidKey(key); err != nil {
		return nil, "", err
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	f, etag, _, err := d.open(key)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	body, err := io.ReadAll(f)
	if err != nil {
		return nil, "", fmt.Errorf("objstore: get %q: %w: %v", key, ErrUnavailable, err)
	}
	return body, etag, nil
}

// GetRange implements Store.
func (d *Dir) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if err := CheckRange(key, off, n); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, _, start, err := d.open(key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("objstore: get range %q: %w: %v", key, ErrUnavailable, err)
	}
	size := st.Size() - start
	if off >= size {
		return []byte{}, nil
	}
	buf := make([]byte, min(n, size-off))
	if _, err := f.ReadAt(buf, start+off); err != nil && err != io.EOF {
		return nil, fmt.Errorf("objstore: get range %q: %w: %v", key, ErrUnavailable, err)
	}
	return buf, nil
}

// Delete implements Store.
func (d *Dir) Delete(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.Remove(d.path(key)); err != nil && !os.IsNotExist(err) && !isNotDir(err) {
		return fmt.Errorf("objstore: delete %q: %w: %v", key, ErrUnavailable, err)
	}
	return nil
}

// List implements Store.
func (d *Dir) List(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	type entry struct {
		key  string
		size int64
	}
	var entries []entry
	base := filepath.Join(d.root, "objects")
	err := filepath.WalkDir(base, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed while walking
			}
			return err
		}
		if de.IsDir() || strings.HasPrefix(de.Name(), ".tmp-") {
			return nil
		}
		rel, _ := filepath.Rel(base, p)
		key, ok := unescapeKey(rel)
		if !ok || !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return nil // removed while walking
		}
		f, _, start, err := d.open(key)
		if err != nil {
			return nil
		}
		f.Close()
		entries = append(entries, entry{key, info.Size() - start})
		return nil
	})
	if err != nil {
		return fmt.Errorf("objstore: list %q: %w: %v", prefix, ErrUnavailable, err)
	}
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

// Close implements Store.
func (d *Dir) Close() error { return nil }
