// Package azure is the objstore.Store adapter for Azure Blob Storage (and its emulator
// Azurite), built on the azblob SDK.
//
// Objects are block blobs written with a single Put Blob request (up to 5000 MiB).
// Conditional writes use If-None-Match: * (create-only) and If-Match (compare-and-swap
// on the ETag). Azure answers a lost create with 409 BlobAlreadyExists and a lost
// compare-and-swap (or If-Match on a missing blob) with 412 ConditionNotMet: both become
// objstore.ErrPreconditionFailed.
//
// Credentials are a connection string, an account's shared key, or Microsoft Entra ID
// tokens from azidentity (Config.Credential, by default DefaultAzureCredential). It is
// the only package that imports the Azure SDK (azblob, azidentity).
package azure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/soullabs/brainy/tiers/objstore"
)

// Store is an objstore.Store on one blob container (and optional name prefix).
type Store struct {
	cfg       Config
	container *container.Client
}

var _ objstore.Store = (*Store)(nil)

// Open returns a Store for cfg after filling in defaults and validating it. Unless
// cfg.CreateContainer is set it sends no request, so refused credentials or a missing
// container show on the first operation.
func Open(ctx context.Context, cfg Config) (*Store, error) { return open(ctx, cfg, nil) }

// open is Open with the HTTP transport of the SDK's pipeline replaced when
// transport is not nil (tests: a loopback TLS server's client).
func open(ctx context.Context, cfg Config, transport policy.Transporter) (*Store, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	retries := int32(cfg.MaxAttempts - 1)
	if retries == 0 {
		retries = -1 // the SDK reads 0 as "default"; -1 disables retries
	}
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry: policy.RetryOptions{
			MaxRetries:    retries,
			RetryDelay:    cfg.RetryDelay,
			MaxRetryDelay: max(cfg.RetryDelay, 30*time.Second),
		},
		Telemetry: policy.TelemetryOptions{Disabled: true},
		Transport: transport,
	}}
	var (
		client *container.Client
		err    error
		auth   string // for the log
	)
	containerURL := strings.TrimSuffix(cfg.Endpoint, "/") + "/" + cfg.Container
	switch {
	case cfg.ConnectionString != "":
		auth = "connection string"
		client, err = container.NewClientFromConnectionString(cfg.ConnectionString, cfg.Container, opts)
	case cfg.AccountKey != "":
		auth = "shared key"
		var cred *container.SharedKeyCredential
		cred, err = container.NewSharedKeyCredential(cfg.Account, cfg.AccountKey)
		if err == nil {
			client, err = container.NewClientWithSharedKeyCredential(containerURL, cred, opts)
		}
	default:
		auth = "entra id token"
		if cfg.Credential == nil {
			cfg.Credential, err = defaultCredential(cfg.ManagedIdentity)
			if err != nil {
				return nil, fmt.Errorf("azure: credential for account %q: %w: %w", cfg.Account, objstore.ErrAccessDenied, err)
			}
		}
		client, err = container.NewClient(containerURL, tokenTagger{cfg.Credential}, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("azure: client for container %q: %w: %w", cfg.Container, objstore.ErrInvalidArgument, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "tiers/azure")
	if cfg.CreateContainer {
		_, err := client.Create(ctx, nil)
		switch {
		case err == nil:
			log.Info("created container", "container", cfg.Container)
		case bloberror.HasCode(err, bloberror.ContainerAlreadyExists):
		default:
			return nil, fmt.Errorf("azure: create container %q: %w", cfg.Container, classify(ctx, err))
		}
	}
	log.Info("opened azure blob store", "container", cfg.Container, "prefix", cfg.Prefix, "url", client.URL(),
		"auth", auth, "credential", fmt.Sprintf("%T", cfg.Credential), "managed_identity", cfg.ManagedIdentity)
	return &Store{cfg: cfg, container: client}, nil
}

// defaultCredential is azidentity's DefaultAzureCredential, or, unless
// managedIdentity, the same chain without its ManagedIdentityCredential: the
// chain's member that probes 169.254.169.254 off App Service. Both construct
// without a request; tokens are fetched on first use.
func defaultCredential(managedIdentity bool) (azcore.TokenCredential, error) {
	if _, chosen := os.LookupEnv("AZURE_TOKEN_CREDENTIALS"); managedIdentity || chosen {
		return azidentity.NewDefaultAzureCredential(nil)
	}
	return azidentity.NewChainedTokenCredential(chainWithoutManagedIdentity(), nil)
}

// chainWithoutManagedIdentity is DefaultAzureCredential's chain, in its
// order, less the managed identity.
func chainWithoutManagedIdentity() []azcore.TokenCredential {
	var chain []azcore.TokenCredential
	add := func(c azcore.TokenCredential, err error) {
		// Environment and workload identity fail to build when their
		// variables are missing; like DefaultAzureCredential, leave them out.
		if err == nil {
			chain = append(chain, c)
		}
	}
	add(azidentity.NewEnvironmentCredential(nil))
	add(azidentity.NewWorkloadIdentityCredential(nil))
	add(azidentity.NewAzureCLICredential(nil))
	add(azidentity.NewAzureDeveloperCLICredential(nil))
	add(azidentity.NewAzurePowerShellCredential(nil))
	return chain
}

// errNoToken marks a failure of the token credential: nothing was sent to
// the blob service.
var errNoToken = errors.New("no usable token")

// tokenTagger marks the credential's failures with errNoToken so that
// classify reports them as objstore.ErrAccessDenied, not as a transport
// failure to retry.
type tokenTagger struct{ c azcore.TokenCredential }

func (t tokenTagger) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := t.c.GetToken(ctx, opts)
	if err != nil && ctx.Err() == nil {
		return tok, fmt.Errorf("%w: %w", errNoToken, err)
	}
	return tok, err
}

// Config returns the store's configuration, defaults filled in and the
// Credential it uses, if any.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) blob(k string) (string, error) { return objstore.PrefixedKey(s.cfg.Prefix, k) }

// Put implements objstore.Store.
func (s *Store) Put(ctx context.Context, key string, body []byte, cond objstore.Cond) (string, error) {
	if err := objstore.CheckPut(key, cond); err != nil {
		return "", err
	}
	name, err := s.blob(key)
	if err != nil {
		return "", err
	}
	opts := &blockblob.UploadOptions{}
	if cond.IfNoneMatch || cond.IfMatch != "" {
		mac := &blob.ModifiedAccessConditions{}
		if cond.IfNoneMatch {
			mac.IfNoneMatch = ptr(azcore.ETagAny)
		} else {
			mac.IfMatch = ptr(azcore.ETag(cond.IfMatch))
		}
		opts.AccessConditions = &blob.AccessConditions{ModifiedAccessConditions: mac}
	}
	resp, err := s.container.NewBlockBlobClient(name).Upload(ctx, streaming.NopCloser(bytes.NewReader(body)), opts)
	if err != nil {
		err = classify(ctx, err)
		if cond.IfMatch != "" && errors.Is(err, objstore.ErrNotFound) {
			return "", fmt.Errorf("azure: put %q: blob missing for If-Match: %w", key, objstore.ErrPreconditionFailed)
		}
		return "", fmt.Errorf("azure: put %q: %w", key, err)
	}
	return etagString(resp.ETag), nil
}

// Get implements objstore.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, string, error) {
	name, err := s.blob(key)
	if err != nil {
		return nil, "", err
	}
	resp, err := s.container.NewBlobClient(name).DownloadStream(ctx, nil)
	if err != nil {
		return nil, "", fmt.Errorf("azure: get %q: %w", key, classify(ctx, err))
	}
	body, err := objstore.ReadAll(resp.Body, derefInt64(resp.ContentLength))
	if err != nil {
		return nil, "", fmt.Errorf("azure: get %q: read body: %w", key, classify(ctx, err))
	}
	return body, etagString(resp.ETag), nil
}

// GetRange implements objstore.Store.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if err := objstore.CheckRange(key, off, n); err != nil {
		return nil, err
	}
	name, err := s.blob(key)
	if err != nil {
		return nil, err
	}
	resp, err := s.container.NewBlobClient(name).DownloadStream(ctx, &blob.DownloadStreamOptions{
		Range: blob.HTTPRange{Offset: off, Count: n},
	})
	if err != nil {
		if bloberror.HasCode(err, bloberror.InvalidRange) || statusOf(err) == http.StatusRequestedRangeNotSatisfiable {
			return []byte{}, nil // off is at or past the end
		}
		return nil, fmt.Errorf("azure: get range %q: %w", key, classify(ctx, err))
	}
	body, err := objstore.ReadAll(resp.Body, min(derefInt64(resp.ContentLength), n))
	if err != nil {
		return nil, fmt.Errorf("azure: get range %q: read body: %w", key, classify(ctx, err))
	}
	return body, nil
}

// Delete implements objstore.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	name, err := s.blob(key)
	if err != nil {
		return err
	}
	if _, err := s.container.NewBlobClient(name).Delete(ctx, nil); err != nil {
		if err = classify(ctx, err); errors.Is(err, objstore.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("azure: delete %q: %w", key, err)
	}
	return nil
}

// List implements objstore.Store with List Blobs, Config.ListPageSize names per request.
func (s *Store) List(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	pager := s.container.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix:     ptr(s.cfg.Prefix + prefix),
		MaxResults: ptr(int32(s.cfg.ListPageSize)),
	})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("azure: list %q: %w", prefix, classify(ctx, err))
		}
		for _, item := range page.Segment.BlobItems {
			if item.Name == nil {
				continue
			}
			k, ok := strings.CutPrefix(*item.Name, s.cfg.Prefix)
			if !ok {
				continue
			}
			var size int64
			if item.Properties != nil {
				size = derefInt64(item.Properties.ContentLength)
			}
			if err := fn(k, size); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close implements objstore.Store. The SDK's client holds no resources beyond pooled
// connections of the shared HTTP transport, so there is nothing to release.
func (s *Store) Close() error { return nil }

// DeleteContainer deletes the store's container with everything in it (for tests and
// tear-down tooling; never called by the store itself).
func (s *Store) DeleteContainer(ctx context.Context) error {
	if _, err := s.container.Delete(ctx, nil); err != nil {
		return fmt.Errorf("azure: delete container %q: %w", s.cfg.Container, classify(ctx, err))
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func derefInt64(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func etagString(e *azcore.ETag) string {
	if e == nil {
		return ""
	}
	return string(*e)
}

func statusOf(err error) int {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// classify wraps err with the objstore sentinel that describes it.
func classify(ctx context.Context, err error) error {
	return objstore.Classify(ctx, err, sentinel(err))
}

// sentinel is the objstore sentinel of an SDK error: by the blob service's error code
// first, then by the HTTP status. ContainerNotFound (404) and the like have none: they
// are configuration problems, not missing keys.
func sentinel(err error) error {
	status := statusOf(err)
	switch {
	case bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) ||
		status == http.StatusPreconditionFailed:
		return objstore.ErrPreconditionFailed
	case bloberror.HasCode(err, bloberror.BlobNotFound):
		return objstore.ErrNotFound
	case errors.Is(err, errNoToken):
		return objstore.ErrAccessDenied
	}
	return objstore.StatusSentinel(status)
}
