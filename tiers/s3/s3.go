// Package s3 is the objstore.Store adapter for Amazon S3 and S3-compatible servers
// (versitygw, MinIO, Ceph RGW, Cloudflare R2), built on aws-sdk-go-v2. It is the only
// package that imports that SDK.
//
// Conditional writes use PutObject's If-None-Match: * (create-only) and If-Match
// (compare-and-swap on the ETag); S3 answers a lost race with 412 (or 409
// ConditionalRequestConflict while a concurrent conditional write is in flight), and
// If-Match on a missing key with 404: all three become objstore.ErrPreconditionFailed.
// The store never contacts the EC2 instance metadata service unless Config.UseIMDS is set.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/soullabs/brainy/tiers/objstore"
)

// Store is an objstore.Store on one S3 bucket (and optional key prefix).
type Store struct {
	cfg    Config
	client *s3.Client
	http   *awshttp.BuildableClient
}

var _ objstore.Store = (*Store)(nil)

// Open returns a Store for cfg after filling in defaults and validating it. It resolves
// credentials lazily: Open itself sends no request, so a wrong bucket or refused
// credentials show on the first operation.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	httpClient := awshttp.NewBuildableClient()
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOptions(cfg, httpClient)...)
	if err != nil {
		return nil, fmt.Errorf("s3: load aws config: %w", err)
	}
	awsCfg.Credentials = aws.NewCredentialsCache(credentialsTagger{awsCfg.Credentials})
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		o.UsePathStyle = cfg.pathStyle()
		o.DisableLogOutputChecksumValidationSkipped = true
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log.With("component", "tiers/s3").Info("opened s3 store",
		"bucket", cfg.Bucket, "prefix", cfg.Prefix, "region", cfg.Region, "endpoint", cfg.Endpoint,
		"path_style", cfg.pathStyle(), "static_credentials", cfg.AccessKeyID != "", "imds", cfg.UseIMDS)
	return &Store{cfg: cfg, client: client, http: httpClient}, nil
}

// loadOptions are the options of the SDK's default configuration for cfg.
func loadOptions(cfg Config, httpClient aws.HTTPClient) []func(*config.LoadOptions) error {
	// Off EC2 the metadata service is not there (a request costs a timeout
	// per credential refresh) or, on another cloud, is that cloud's; the
	// default state lets AWS_EC2_METADATA_DISABLED=true still veto it on EC2.
	imdsState := imds.ClientDisabled
	if cfg.UseIMDS {
		imdsState = imds.ClientDefaultEnableState
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRegion(cfg.Region),
		config.WithRetryMaxAttempts(cfg.MaxAttempts),
		config.WithHTTPClient(httpClient),
		config.WithEC2IMDSClientEnableState(imdsState),
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	return opts
}

// Config returns the store's configuration, defaults filled in.
func (s *Store) Config() Config { return s.cfg }

func (s *Store) key(k string) (string, error) { return objstore.PrefixedKey(s.cfg.Prefix, k) }

// Put implements objstore.Store.
func (s *Store) Put(ctx context.Context, key string, body []byte, cond objstore.Cond) (string, error) {
	if err := objstore.CheckPut(key, cond); err != nil {
		return "", err
	}
	full, err := s.key(key)
	if err != nil {
		return "", err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.cfg.Bucket),
		Key:           aws.String(full),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	}
	if cond.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if cond.IfMatch != "" {
		in.IfMatch = aws.String(cond.IfMatch)
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		err = classify(ctx, err)
		if cond.IfMatch != "" && errors.Is(err, objstore.ErrNotFound) {
			// S3 answers If-Match on a missing key with 404; the contract says 412.
			return "", fmt.Errorf("s3: put %q: key missing for If-Match: %w", key, objstore.ErrPreconditionFailed)
		}
		return "", fmt.Errorf("s3: put %q: %w", key, err)
	}
	return aws.ToString(out.ETag), nil
}

// Get implements objstore.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, string, error) {
	full, err := s.key(key)
	if err != nil {
		return nil, "", err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(full)})
	if err != nil {
		return nil, "", fmt.Errorf("s3: get %q: %w", key, classify(ctx, err))
	}
	body, err := objstore.ReadAll(out.Body, aws.ToInt64(out.ContentLength))
	if err != nil {
		return nil, "", fmt.Errorf("s3: get %q: read body: %w", key, classify(ctx, err))
	}
	return body, aws.ToString(out.ETag), nil
}

// GetRange implements objstore.Store.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if err := objstore.CheckRange(key, off, n); err != nil {
		return nil, err
	}
	full, err := s.key(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.cfg.Bucket),
		Key:    aws.String(full),
		Range:  aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1)),
	})
	if err != nil {
		if statusOf(err) == http.StatusRequestedRangeNotSatisfiable {
			return []byte{}, nil // off is at or past the end
		}
		return nil, fmt.Errorf("s3: get range %q: %w", key, classify(ctx, err))
	}
	body, err := objstore.ReadAll(out.Body, aws.ToInt64(out.ContentLength))
	if err != nil {
		return nil, fmt.Errorf("s3: get range %q: read body: %w", key, classify(ctx, err))
	}
	if aws.ToString(out.ContentRange) == "" {
		// A server that ignored the Range header sent the whole object.
		end := min(off+n, int64(len(body)))
		return body[min(off, end):end], nil
	}
	if int64(len(body)) > n {
		return nil, fmt.Errorf("s3: get range %q: %d bytes for a range of %d", key, len(body), n)
	}
	return body, nil
}

// Delete implements objstore.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	full, err := s.key(key)
	if err != nil {
		return err
	}
	_, err = s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(full)})
	if err != nil {
		if err = classify(ctx, err); errors.Is(err, objstore.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("s3: delete %q: %w", key, err)
	}
	return nil
}

// List implements objstore.Store with ListObjectsV2, Config.ListPageSize keys per request.
func (s *Store) List(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.cfg.Bucket),
		Prefix:  aws.String(s.cfg.Prefix + prefix),
		MaxKeys: aws.Int32(int32(s.cfg.ListPageSize)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3: list %q: %w", prefix, classify(ctx, err))
		}
		for _, o := range page.Contents {
			k, ok := strings.CutPrefix(aws.ToString(o.Key), s.cfg.Prefix)
			if !ok {
				continue
			}
			if err := fn(k, aws.ToInt64(o.Size)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Close implements objstore.Store: it closes idle connections.
func (s *Store) Close() error {
	s.http.GetTransport().CloseIdleConnections()
	return nil
}

// errNoCredentials marks a failure of the credential chain: nothing was sent.
var errNoCredentials = errors.New("no usable credentials")

// credentialsTagger marks the credential provider's failures with errNoCredentials so
// that classify can tell them from transport errors.
type credentialsTagger struct{ p aws.CredentialsProvider }

func (c credentialsTagger) Retrieve(ctx context.Context) (aws.Credentials, error) {
	if c.p == nil {
		return aws.Credentials{}, errNoCredentials
	}
	creds, err := c.p.Retrieve(ctx)
	if err != nil {
		return creds, fmt.Errorf("%w: %w", errNoCredentials, err)
	}
	return creds, nil
}

func statusOf(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// classify wraps err with the objstore sentinel that describes it.
func classify(ctx context.Context, err error) error {
	return objstore.Classify(ctx, err, sentinel(err))
}

// sentinel is the objstore sentinel of an SDK error: by S3's error code first, then by
// the HTTP status.
func sentinel(err error) error {
	code := ""
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	status := statusOf(err)
	switch {
	case code == "NoSuchKey" || code == "NotFound" || (status == http.StatusNotFound && code != "NoSuchBucket"):
		return objstore.ErrNotFound
	case status == http.StatusPreconditionFailed || code == "PreconditionFailed" || code == "ConditionalRequestConflict":
		return objstore.ErrPreconditionFailed
	case errors.Is(err, errNoCredentials) || status == http.StatusUnauthorized || status == http.StatusForbidden ||
		code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch":
		return objstore.ErrAccessDenied
	case code == "SlowDown":
		return objstore.ErrUnavailable
	}
	return objstore.StatusSentinel(status)
}
