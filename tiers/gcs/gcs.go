// Package gcs is the objstore.Store adapter for Google Cloud Storage (and emulators such
// as fake-gcs-server), built on cloud.google.com/go/storage. It is the only package that
// imports that library.
//
// An object's ETag is its generation number in decimal. Conditional writes use the
// ifGenerationMatch precondition (0 for create-only, the generation for
// compare-and-swap); GCS answers a lost race with 412, which becomes
// objstore.ErrPreconditionFailed. Every object is written in one multipart request
// (Writer.ChunkSize = 0), which is also the upload type on which fake-gcs-server
// enforces preconditions (it ignores them on uploadType=media).
package gcs

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/soullabs/brainy/tiers/objstore"
)

// Store is an objstore.Store on one bucket (and optional name prefix).
type Store struct {
	cfg    Config
	client *storage.Client
	bucket *storage.BucketHandle
}

var _ objstore.Store = (*Store)(nil)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// Open returns a Store for cfg after filling in defaults and validating it. It sends no
// request: a missing bucket shows on the first operation.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Anonymous && !cfg.UseMetadataServer {
		if credentialsSource() == "" {
			return nil, fmt.Errorf("gcs: no credentials: GOOGLE_APPLICATION_CREDENTIALS is unset and gcloud's "+
				"application_default_credentials.json is missing, and the metadata server is asked only on Google Cloud "+
				"(UseMetadataServer, ?metadata_server=true): %w", objstore.ErrAccessDenied)
		}
	}
	var opts []option.ClientOption
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(cfg.Endpoint))
	}
	if cfg.Anonymous {
		opts = append(opts, option.WithoutAuthentication())
	}
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("gcs: new client: %w", classify(ctx, err))
	}
	client.SetRetry(storage.WithMaxAttempts(cfg.MaxAttempts))
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.With("component", "tiers/gcs").Info("opened gcs store",
		"bucket", cfg.Bucket, "prefix", cfg.Prefix, "endpoint", cfg.Endpoint, "anonymous", cfg.Anonymous,
		"metadata_server", cfg.UseMetadataServer)
	return &Store{cfg: cfg, client: client, bucket: client.Bucket(cfg.Bucket)}, nil
}

// credentialsSource names where Application Default Credentials will come
// from before the metadata server, "" if nowhere: the variables and the
// gcloud file that cloud.google.com/go/auth's DetectDefault reads first, and
// the variables with which the client library asks no one for credentials
// (an emulator) or trusts a metadata server without probing for one.
func credentialsSource() string {
	for _, k := range []string{"GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "GCE_METADATA_HOST"} {
		if os.Getenv(k) != "" {
			return k
		}
	}
	var file string
	if runtime.GOOS == "windows" {
		file = filepath.Join(os.Getenv("APPDATA"), "gcloud", "application_default_credentials.json")
	} else if home := os.Getenv("HOME"); home != "" {
		file = filepath.Join(home, ".config", "gcloud", "application_default_credentials.json")
	} else if u, err := user.Current(); err == nil {
		file = filepath.Join(u.HomeDir, ".config", "gcloud", "application_default_credentials.json")
	}
	if st, err := os.Stat(file); file != "" && err == nil && st.Mode().IsRegular() {
		return file
	}
	return ""
}

// Config returns the store's configuration, defaults filled in.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) object(k string) (*storage.ObjectHandle, error) {
	full, err := objstore.PrefixedKey(s.cfg.Prefix, k)
	if err != nil {
		return nil, err
	}
	return s.bucket.Object(full), nil
}

// ParseETag returns the generation that etag (as returned by Put or Get) names. Only
// positive decimal numbers without sign or leading zeros are ETags of this adapter.
func ParseETag(etag string) (int64, bool) {
	if etag == "" || etag[0] == '0' || etag[0] == '+' || etag[0] == '-' {
		return 0, false
	}
	g, err := strconv.ParseInt(etag, 10, 64)
	if err != nil || g <= 0 {
		return 0, false
	}
	return g, true
}

// FormatETag returns the ETag of generation g.
func FormatETag(g int64) string { return strconv.FormatInt(g, 10) }

// Put implements objstore.Store.
func (s *Store) Put(ctx context.Context, key string, body []byte, cond objstore.Cond) (string, error) {
	if err := objstore.CheckPut(key, cond); err != nil {
		return "", err
	}
	obj, err := s.object(key)
	if err != nil {
		return "", err
	}
	switch {
	case cond.IfNoneMatch:
		obj = obj.If(storage.Conditions{DoesNotExist: true})
	case cond.IfMatch != "":
		g, ok := ParseETag(cond.IfMatch)
		if !ok {
			// No object has this ETag, so the comparison fails without asking.
			return "", fmt.Errorf("gcs: put %q: %q is not a generation: %w", key, cond.IfMatch, objstore.ErrPreconditionFailed)
		}
		obj = obj.If(storage.Conditions{GenerationMatch: g})
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("gcs: put %q: %w", key, err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := obj.NewWriter(wctx)
	w.ChunkSize = 0 // one multipart request: atomic, and preconditions are enforced
	w.ContentType = "application/octet-stream"
	w.CRC32C = crc32.Checksum(body, crc32c)
	w.SendCRC32C = true
	if _, err := w.Write(body); err != nil {
		cancel()
		_ = w.Close()
		return "", fmt.Errorf("gcs: put %q: %w", key, classify(ctx, err))
	}
	if err := w.Close(); err != nil {
		err = classify(ctx, err)
		if cond.IfMatch != "" && errors.Is(err, objstore.ErrNotFound) {
			return "", fmt.Errorf("gcs: put %q: object missing for If-Match: %w", key, objstore.ErrPreconditionFailed)
		}
		return "", fmt.Errorf("gcs: put %q: %w", key, err)
	}
	return FormatETag(w.Attrs().Generation), nil
}

// Get implements objstore.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, string, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, "", err
	}
	r, err := obj.NewReader(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("gcs: get %q: %w", key, classify(ctx, err))
	}
	body, err := objstore.ReadAll(r, r.Attrs.Size)
	if err != nil {
		return nil, "", fmt.Errorf("gcs: get %q: read body: %w", key, classify(ctx, err))
	}
	return body, FormatETag(r.Attrs.Generation), nil
}

// GetRange implements objstore.Store.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if err := objstore.CheckRange(key, off, n); err != nil {
		return nil, err
	}
	obj, err := s.object(key)
	if err != nil {
		return nil, err
	}
	r, err := obj.NewRangeReader(ctx, off, n)
	if err != nil {
		if statusOf(err) == http.StatusRequestedRangeNotSatisfiable {
			return []byte{}, nil // off is at or past the end
		}
		return nil, fmt.Errorf("gcs: get range %q: %w", key, classify(ctx, err))
	}
	body, err := objstore.ReadAll(r, min(r.Remain(), n))
	if err != nil {
		return nil, fmt.Errorf("gcs: get range %q: read body: %w", key, classify(ctx, err))
	}
	return body, nil
}

// Delete implements objstore.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	obj, err := s.object(key)
	if err != nil {
		return err
	}
	if err := obj.Delete(ctx); err != nil {
		if err = classify(ctx, err); errors.Is(err, objstore.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("gcs: delete %q: %w", key, err)
	}
	return nil
}

// List implements objstore.Store, Config.ListPageSize objects per request.
func (s *Store) List(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	q := &storage.Query{Prefix: s.cfg.Prefix + prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size"}); err != nil {
		return fmt.Errorf("gcs: list %q: %w", prefix, err)
	}
	it := s.bucket.Objects(ctx, q)
	it.PageInfo().MaxSize = s.cfg.ListPageSize
	for {
		attrs, err := it.Next()
		if err == iterator.Done {
			return nil
		}
		if err != nil {
			return fmt.Errorf("gcs: list %q: %w", prefix, classify(ctx, err))
		}
		k, ok := strings.CutPrefix(attrs.Name, s.cfg.Prefix)
		if !ok {
			continue
		}
		if err := fn(k, attrs.Size); err != nil {
			return err
		}
	}
}

// Close implements objstore.Store.
func (s *Store) Close() error {
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("gcs: close: %w", err)
	}
	return nil
}

func statusOf(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

// classify wraps err with the objstore sentinel that describes it.
func classify(ctx context.Context, err error) error {
	return objstore.Classify(ctx, err, sentinel(err))
}

// sentinel is the objstore sentinel of an error of the client library: a missing
// object, else by the HTTP status. A missing bucket has none: it is a configuration
// problem, neither a missing key nor an outage.
func sentinel(err error) error {
	status := statusOf(err)
	noBucket := errors.Is(err, storage.ErrBucketNotExist)
	switch {
	case errors.Is(err, storage.ErrObjectNotExist) || status == http.StatusNotFound && !noBucket:
		return objstore.ErrNotFound
	case status == 0 && noBucket:
		return nil
	}
	return objstore.StatusSentinel(status)
}
