// Package objstore defines the small blob interface that every object store adapter
// (tiers/s3, tiers/azure, tiers/gcs) implements, the error sentinels they translate their
// backends' answers into, and an in-memory implementation for tests.
//
// The interface is deliberately lower level than tiers.Store: whole objects are written
// at once, there is no ordering or transaction across keys, and the only coordination
// primitive is the conditional write (Cond). Code built on top of it (a log-structured
// segment/manifest store) uses conditional creates to claim names and compare-and-swap on
// ETags to advance a manifest.
//
// Usage contract:
//   - All methods are safe for concurrent use by multiple goroutines.
//   - Keys are validated with ValidKey; an invalid key fails with ErrInvalidArgument
//     before any I/O.
//   - Errors are wrapped with %w and classified by the sentinels below; check them with
//     errors.Is. Anything a backend answers that has no sentinel is returned wrapped
//     as is (for example a malformed response).
//   - Portable keys never make one key a "directory" of another: with "a" stored, don't
//     store "a/b". Object stores allow it, but file-system-backed servers (versitygw's
//     posix backend, used in tests) refuse the second write.
//   - Close releases the client's resources; the store must not be used afterwards.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Store is a flat namespace of immutable-per-version blobs addressed by key.
type Store interface {
	// Put writes body under key as one object, replacing any previous one unless cond
	// says otherwise, and returns the new object's ETag. A Put is atomic: readers see
	// the old or the new body, never a mix. If cond is not met, Put fails with
	// ErrPreconditionFailed and changes nothing. Put does not keep body.
	Put(ctx context.Context, key string, body []byte, cond Cond) (etag string, err error)

	// Get returns the whole body and the ETag of the object under key, or
	// ErrNotFound.
	Get(ctx context.Context, key string) (body []byte, etag string, err error)

	// GetRange returns up to n bytes of the object under key starting at byte off:
	// fewer at the end of the object, none (and no error) if off is at or past the end.
	// off must be >= 0 and n > 0, otherwise ErrInvalidArgument. A missing key is
	// ErrNotFound.
	GetRange(ctx context.Context, key string, off, n int64) ([]byte, error)

	// Delete removes the object under key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error

	// List calls fn for each object whose key starts with prefix, in ascending byte
	// order of keys, with the key and the object's size in bytes. It pages through the
	// backend's listing as needed. If fn returns an error, List stops and returns that
	// error unwrapped. fn is called on List's goroutine, one call at a time. The
	// listing is not a snapshot: objects written or deleted while it runs may or may
	// not be seen.
	List(ctx context.Context, prefix string, fn func(key string, size int64) error) error

	// Close releases the store's resources.
	Close() error
}

// Cond is the precondition of a Put. The zero Cond writes unconditionally.
// Setting both fields is an ErrInvalidArgument.
type Cond struct {
	// IfNoneMatch makes the Put create-only: it fails with ErrPreconditionFailed if an
	// object already exists under the key. Of several concurrent creators exactly one
	// wins. (S3 answers 412, Azure 409 BlobAlreadyExists, GCS 412; all become
	// ErrPreconditionFailed.)
	IfNoneMatch bool

	// IfMatch, when not empty, makes the Put a compare-and-swap: it succeeds only if
	// the current object's ETag equals IfMatch (as returned by Put or Get). Of several
	// concurrent writers holding the same ETag exactly one wins. If no object exists
	// under the key the Put fails with ErrPreconditionFailed (adapters translate a
	// backend's 404 for this case, so callers need to handle one error only).
	IfMatch string
}

// Sentinel errors. Adapters wrap them (together with the backend's own error) so that
// errors.Is(err, objstore.ErrNotFound) and friends classify any failure.
var (
	// ErrNotFound: no object under the key (Get, GetRange).
	ErrNotFound = errors.New("objstore: not found")
	// ErrPreconditionFailed: a conditional Put lost (the key exists for IfNoneMatch;
	// the ETag changed or the key is gone for IfMatch).
	ErrPreconditionFailed = errors.New("objstore: precondition failed")
	// ErrAccessDenied: the backend refused the credentials or the operation
	// (HTTP 401/403).
	ErrAccessDenied = errors.New("objstore: access denied")
	// ErrUnavailable: the backend could not be reached or answered with a server-side
	// or throttling error after the adapter's retries (connection refused, timeouts,
	// HTTP 429/5xx). Retrying later may succeed.
	ErrUnavailable = errors.New("objstore: unavailable")
	// ErrInvalidArgument: the call was malformed (bad key, range or Cond); nothing was
	// sent to the backend.
	ErrInvalidArgument = errors.New("objstore: invalid argument")
)

// MaxKeyLen is the longest key in bytes that every supported backend accepts.
const MaxKeyLen = 1024

// ValidKey reports whether key is usable on every backend: non-empty, at most MaxKeyLen
// bytes of valid UTF-8, without control characters, and not "." or ".." (which some
// backends resolve as paths). Adapters may add a prefix; the prefixed key must satisfy
// the same rules.
func ValidKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("objstore: empty key: %w", ErrInvalidArgument)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("objstore: key of %d bytes exceeds %d: %w", len(key), MaxKeyLen, ErrInvalidArgument)
	case !utf8.ValidString(key):
		return fmt.Errorf("objstore: key %q is not valid UTF-8: %w", key, ErrInvalidArgument)
	case key == "." || key == "..":
		return fmt.Errorf("objstore: key %q is a path segment: %w", key, ErrInvalidArgument)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("objstore: key %q contains control character %U: %w", key, r, ErrInvalidArgument)
		}
	}
	return nil
}

// CheckPut validates the arguments of Put; adapters call it first.
func CheckPut(key string, cond Cond) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	if cond.IfNoneMatch && cond.IfMatch != "" {
		return fmt.Errorf("objstore: Cond with both IfNoneMatch and IfMatch: %w", ErrInvalidArgument)
	}
	return nil
}

// CheckRange validates the arguments of GetRange; adapters call it first.
func CheckRange(key string, off, n int64) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	if off < 0 || n <= 0 {
		return fmt.Errorf("objstore: range off=%d n=%d (want off >= 0, n > 0): %w", off, n, ErrInvalidArgument)
	}
	return nil
}

// PrefixedKey returns prefix+key for an adapter whose objects live under a
// prefix, checking both the caller's key and the full name with ValidKey.
func PrefixedKey(prefix, key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	full := prefix + key
	if err := ValidKey(full); err != nil {
		return "", err
	}
	return full, nil
}
