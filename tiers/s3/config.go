package s3

import (
	"log/slog"

	"github.com/soullabs/brainy/tiers/objstore"
)

// Config configures a Store. The zero value of every field except Bucket means its
// default; EnsureDefaults fills them in and Validate checks the result.
type Config struct {
	// Bucket is the bucket holding the objects. Required; it must exist.
	Bucket string

	// Prefix is prepended to every key, so several stores can share a bucket
	// (for example "node-1/"). Default "" (keys are used as they are). Listing strips it.
	Prefix string

	// Region is the bucket's region, used for request signing. Default "us-east-1"
	// (what most S3-compatible servers expect).
	Region string

	// Endpoint overrides the service URL, e.g. "http://127.0.0.1:9000" for an
	// S3-compatible server (versitygw, MinIO, Ceph, R2). Default "" (AWS S3 of Region).
	Endpoint string

	// AddressingStyle is "path" (http://host/bucket/key), "virtual"
	// (http://bucket.host/key) or "auto": path style when Endpoint is set (S3-compatible
	// servers rarely have wildcard DNS), virtual-hosted otherwise (what AWS requires for
	// new buckets). Default "auto".
	AddressingStyle string

	// AccessKeyID, SecretAccessKey and SessionToken are explicit static credentials. If
	// AccessKeyID is empty the SDK's standard chain is used: environment variables,
	// shared config and credentials files, SSO, web identity, the ECS container endpoint,
	// and the EC2 instance metadata service only if UseIMDS is set. Default: the chain.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string

	// UseIMDS allows the credential chain to query the EC2 instance metadata service
	// at 169.254.169.254 for the instance role's credentials (unless
	// AWS_EC2_METADATA_DISABLED=true vetoes it). Default false: the store never
	// contacts it, which avoids a slow timeout off EC2 and asking another cloud's
	// metadata service at the same address. tiers/backend sets it when
	// internal/cloudenv finds the machine to be an EC2 instance.
	UseIMDS bool

	// MaxAttempts is the number of tries of each request, the first included, with the
	// SDK's exponential backoff between them for throttling, 5xx and connection errors.
	// Default 3. More ride out longer outages at the price of slower failure reports.
	MaxAttempts int

	// ListPageSize is the number of keys asked for per listing request, 1..1000.
	// Default 1000 (the S3 maximum); small values only help tests.
	ListPageSize int

	// Logger receives the store's rare events (opening). Nil discards.
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultRegion          = "us-east-1"
	DefaultAddressingStyle = "auto"
	DefaultMaxAttempts     = 3
	DefaultListPageSize    = 1000
)

// DefaultConfig returns the configuration for bucket on AWS S3 with every default set.
func DefaultConfig(bucket string) Config {
	c := Config{Bucket: bucket}
	c.EnsureDefaults()
	return c
}

// LocalConfig returns the configuration for bucket on an S3-compatible server at
// endpoint (e.g. "http://127.0.0.1:9000") with static credentials and path-style
// addressing.
func LocalConfig(endpoint, bucket, accessKeyID, secretAccessKey string) Config {
	c := Config{
		Bucket:          bucket,
		Endpoint:        endpoint,
		AddressingStyle: "path",
		AccessKeyID:     accessKeyID,
		SecretAccessKey: secretAccessKey,
	}
	c.EnsureDefaults()
	return c
}

// EnsureDefaults sets every zero field to its default.
func (c *Config) EnsureDefaults() {
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.AddressingStyle == "" {
		c.AddressingStyle = DefaultAddressingStyle
	}
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
	if c.Region == "" {
		p.Add("Region is empty")
	}
	p.Endpoint(c.Endpoint)
	switch c.AddressingStyle {
	case "auto", "path", "virtual":
	default:
		p.Add("AddressingStyle (%q) must be auto, path or virtual", c.AddressingStyle)
	}
	if (c.AccessKeyID == "") != (c.SecretAccessKey == "") {
		p.Add("AccessKeyID and SecretAccessKey must be set together")
	}
	if c.SessionToken != "" && c.AccessKeyID == "" {
		p.Add("SessionToken needs AccessKeyID and SecretAccessKey")
	}
	if c.MaxAttempts < 1 {
		p.Add("MaxAttempts (%d) must be >= 1", c.MaxAttempts)
	}
	if c.ListPageSize < 1 || c.ListPageSize > 1000 {
		p.Add("ListPageSize (%d) must be in 1..1000", c.ListPageSize)
	}
	return p.Err("s3")
}

func (c *Config) pathStyle() bool {
	return c.AddressingStyle == "path" || (c.AddressingStyle == "auto" && c.Endpoint != "")
}

// ConfigFromURL returns the configuration for an s3:// storage URL (see
// objstore.ParseURL) with defaults set. Parameters: region, endpoint, addressing_style
// (auto, path, virtual), imds (true/false), max_attempts. Credentials come from the SDK's
// standard chain (environment, shared files, ...), never from the URL.
func ConfigFromURL(loc objstore.Location) (Config, error) {
	c := Config{Bucket: loc.Bucket, Prefix: loc.Prefix}
	err := objstore.ConfigFromURL(loc, "s3", "s3", &c,
		objstore.StringParam("region", &c.Region),
		objstore.StringParam("endpoint", &c.Endpoint),
		objstore.StringParam("addressing_style", &c.AddressingStyle),
		objstore.BoolParam("imds", &c.UseIMDS),
		objstore.IntParam("max_attempts", &c.MaxAttempts))
	if err != nil {
		return Config{}, err
	}
	return c, nil
}
