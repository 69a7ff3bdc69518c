package gcs

import (
	"log/slog"

	"github.com/soullabs/brainy/tiers/objstore"
)

// Config configures a Store. The zero value of every field except Bucket means its
// default; EnsureDefaults fills them in and Validate checks the result.
type Config struct {
	// Bucket is the bucket holding the objects. Required; it must exist.
	Bucket string

	// Prefix is prepended to every object name, so several stores can share a bucket.
	// Default "". Listing strips it.
	Prefix string

	// Endpoint is the JSON API base URL, e.g. "http://127.0.0.1:4443/storage/v1/" for
	// fake-gcs-server. Default "": Google Cloud Storage, or the emulator named by the
	// STORAGE_EMULATOR_HOST environment variable (as the client library does).
	Endpoint string

	// Anonymous sends requests without credentials (emulators, public buckets).
	// Default false: Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS,
	// gcloud's user credentials, or on Google Cloud the metadata server).
	Anonymous bool

	// UseMetadataServer lets Application Default Credentials fall back to the
	// metadata server's service-account tokens (GCE, GKE, Cloud Run) when neither
	// GOOGLE_APPLICATION_CREDENTIALS nor gcloud's credentials file exists. Default
	// false: then Open fails with objstore.ErrAccessDenied instead of letting the client
	// library probe 169.254.169.254 and metadata.google.internal, which off Google Cloud
	// costs a wait or reaches another cloud's metadata service. tiers/backend sets it
	// when internal/cloudenv detects Google Cloud; GCE_METADATA_HOST also allows it.
	UseMetadataServer bool

	// MaxAttempts is the number of tries of each request, the first included, with the
	// client library's exponential backoff between them (for 429, 5xx and connection
	// errors). Conditional writes are retried too: should a retried create find its own
	// first attempt, it reports ErrPreconditionFailed. Default 3.
	MaxAttempts int

	// ListPageSize is the number of objects asked for per listing request, 1..1000.
	// Default 1000 (the service maximum); small values only help tests.
	ListPageSize int

	// Logger receives the store's rare events (opening). Nil discards.
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultMaxAttempts  = 3
	DefaultListPageSize = 1000
)

// DefaultConfig returns the configuration for bucket on Google Cloud Storage with every
// default set.
func DefaultConfig(bucket string) Config {
	c := Config{Bucket: bucket}
	c.EnsureDefaults()
	return c
}

// EmulatorConfig returns the configuration for bucket on an emulator such as
// fake-gcs-server listening at hostPort (e.g. "127.0.0.1:4443", plain HTTP).
func EmulatorConfig(hostPort, bucket string) Config {
	c := Config{Bucket: bucket, Endpoint: "http://" + hostPort + "/storage/v1/", Anonymous: true}
	c.EnsureDefaults()
	return c
}

// EnsureDefaults sets every zero field to its default.
func (c *Config) EnsureDefaults() {
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.ListPageSize == 0 {
		c.ListPageSize = DefaultListPageSize
	}
}

// Validate reports every problem of the configuration at once. It does not change c;
// call EnsureDefaults first.
func (c *Config) Validate() error {
	var p objstore.ConfigProblems
	if c.Bucket == "" {
		p.Add("Bucket is required")
	}
	p.Prefix(c.Prefix)
	p.Endpoint(c.Endpoint)
	if c.MaxAttempts < 1 {
		p.Add("MaxAttempts (%d) must be >= 1", c.MaxAttempts)
	}
	if c.ListPageSize < 1 || c.ListPageSize > 1000 {
		p.Add("ListPageSize (%d) must be in 1..1000", c.ListPageSize)
	}
	return p.Err("gcs")
}

// ConfigFromURL returns the configuration for a gs:// storage URL (see
// objstore.ParseURL) with defaults set. Parameters: endpoint, anonymous (true/false),
// metadata_server (true/false), max_attempts. Credentials are Application Default
// Credentials unless anonymous.
func ConfigFromURL(loc objstore.Location) (Config, error) {
	c := Config{Bucket: loc.Bucket, Prefix: loc.Prefix}
	err := objstore.ConfigFromURL(loc, "gcs", "gs", &c,
		objstore.StringParam("endpoint", &c.Endpoint),
		objstore.BoolParam("anonymous", &c.Anonymous),
		objstore.BoolParam("metadata_server", &c.UseMetadataServer),
		objstore.IntParam("max_attempts", &c.MaxAttempts))
	if err != nil {
		return Config{}, err
	}
	return c, nil
}
