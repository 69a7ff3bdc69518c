package azure

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/soullabs/brainy/tiers/objstore"
)

// Config configures a Store. The zero value of every field except Container and the
// credentials means its default; EnsureDefaults fills them in and Validate checks the
// result.
type Config struct {
	// Container is the blob container holding the objects. Required: 3-63 lower-case
	// letters, digits and single dashes.
	Container string

	// Prefix is prepended to every blob name, so several stores can share a container.
	// Default "". Listing strips it.
	Prefix string

	// ConnectionString is an Azure Storage connection string
	// ("DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...;..." or one with a
	// SharedAccessSignature). Either it or Account and AccountKey are required.
	ConnectionString string

	// Account and AccountKey are the storage account name and its shared key (base64),
	// used when ConnectionString is empty.
	Account    string
	AccountKey string

	// Endpoint is the blob service URL used with Account and AccountKey. Default
	// "https://<Account>.blob.core.windows.net". For Azurite it is
	// "http://127.0.0.1:10000/<Account>".
	Endpoint string

	// CreateContainer creates Container at Open if it does not exist. Default false:
	// a missing container is an error on the first operation, which catches typos in
	// production; tests set it.
	CreateContainer bool

	// MaxAttempts is the number of tries of each request, the first included, with
	// exponential backoff from RetryDelay between them (for throttling, 5xx and
	// connection errors). Default 4 (the SDK's three retries).
	MaxAttempts int

	// RetryDelay is the backoff before the first retry; it doubles per retry up to
	// 30 s. Default 800ms: short enough that a lost connection costs about a second,
	// long enough not to hammer a throttling account.
	RetryDelay time.Duration

	// ListPageSize is the number of blobs asked for per listing request, 1..5000.
	// Default 5000 (the service maximum); small values only help tests.
	ListPageSize int

	// Logger receives the store's rare events (opening, container creation). Nil discards.
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultMaxAttempts  = 4
	DefaultRetryDelay   = 800 * time.Millisecond
	DefaultListPageSize = 5000
)

// DefaultConfig returns the configuration for container in the account of
// connectionString with every default set.
func DefaultConfig(connectionString, container string) Config {
	c := Config{ConnectionString: connectionString, Container: container}
	c.EnsureDefaults()
	return c
}

// EnsureDefaults sets every zero field to its default.
func (c *Config) EnsureDefaults() {
	if c.Endpoint == "" && c.ConnectionString == "" && c.Account != "" {
		c.Endpoint = "https://" + c.Account + ".blob.core.windows.net"
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.ListPageSize == 0 {
		c.ListPageSize = DefaultListPageSize
	}
}

// Validate reports every problem of the configuration at once. It does not change c;
// call EnsureDefaults first.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !validContainer(c.Container) {
		add("Container (%q) must be 3-63 lower-case letters, digits and single dashes, starting with a letter or digit", c.Container)
	}
	if !utf8.ValidString(c.Prefix) || len(c.Prefix) > 512 {
		add("Prefix (%q) must be valid UTF-8 of at most 512 bytes", c.Prefix)
	}
	switch {
	case c.ConnectionString != "" && (c.Account != "" || c.AccountKey != ""):
		add("set either ConnectionString or Account and AccountKey, not both")
	case c.ConnectionString == "" && (c.Account == "" || c.AccountKey == ""):
		add("ConnectionString or Account and AccountKey are required")
	}
	if c.ConnectionString == "" && c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add("Endpoint (%q) must be an http:// or https:// URL with a host", c.Endpoint)
		}
	}
	if c.MaxAttempts < 1 {
		add("MaxAttempts (%d) must be >= 1", c.MaxAttempts)
	}
	if c.RetryDelay < 0 {
		add("RetryDelay (%s) must be >= 0", c.RetryDelay)
	}
	if c.ListPageSize < 1 || c.ListPageSize > 5000 {
		add("ListPageSize (%d) must be in 1..5000", c.ListPageSize)
	}
	if len(errs) > 0 {
		return fmt.Errorf("azure: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// validContainer applies Azure's container naming rules.
func validContainer(name string) bool {
	if len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9':
		case ch == '-' && name[i-1] != '-':
		default:
			return false
		}
	}
	return true
}

// ConfigFromURL returns the configuration for an azure:// storage URL (see
// objstore.ParseURL; the bucket is the container); Open fills in defaults. Parameters:
// account, endpoint, create_container (true/false), max_attempts. Credentials are not
// taken from the URL: set ConnectionString, or AccountKey, on the result (for example
// from AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_KEY) before Open.
func ConfigFromURL(loc objstore.Location) (Config, error) {
	if loc.Scheme != "azure" {
		return Config{}, fmt.Errorf("azure: storage URL scheme %q is not azure: %w", loc.Scheme, objstore.ErrInvalidArgument)
	}
	c := Config{Container: loc.Bucket, Prefix: loc.Prefix}
	err := loc.TakeParams(func(k, v string) error {
		var err error
		switch k {
		case "account":
			c.Account = v
		case "endpoint":
			c.Endpoint = v
		case "create_container":
			c.CreateContainer, err = strconv.ParseBool(v)
		case "max_attempts":
			c.MaxAttempts, err = strconv.Atoi(v)
		}
		return err
	}, "account", "endpoint", "create_container", "max_attempts")
	if err != nil {
		return Config{}, fmt.Errorf("azure: %w", err)
	}
	return c, nil
}
