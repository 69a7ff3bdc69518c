package azure

import (
	"log/slog"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

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
	// SharedAccessSignature). Either it or Account is required.
	ConnectionString string

	// Account is the storage account name, used when ConnectionString is empty.
	// AccountKey is its shared key (base64); without one the store authenticates with
	// Microsoft Entra ID tokens from Credential.
	Account    string
	AccountKey string

	// Credential supplies Entra ID tokens when Account is set without AccountKey. Default
	// nil: Open builds azidentity's DefaultAzureCredential (environment service principal,
	// workload identity, managed identity, Azure CLI, Azure Developer CLI, PowerShell) if
	// ManagedIdentity is set, and the same chain without the managed identity otherwise.
	// Building either sends nothing; the first request fetches a token. The identity
	// needs a data role on the account, e.g. "Storage Blob Data Contributor".
	Credential azcore.TokenCredential

	// ManagedIdentity lets the default Credential ask for a managed identity's token:
	// the Azure instance metadata service at 169.254.169.254 on virtual machines, or
	// IDENTITY_ENDPOINT on App Service. Default false: off Azure that address is
	// nobody's, or another cloud's metadata service, and asking costs a probe per
	// process. tiers/backend sets it when internal/cloudenv detects Azure. It has no
	// effect with an explicit Credential, or with AZURE_TOKEN_CREDENTIALS set (which
	// selects DefaultAzureCredential's members itself).
	ManagedIdentity bool

	// Endpoint is the blob service URL used with Account (with a key or tokens). Default
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
func (c *Config) Validate() error { return c.validate(true) }

// validate is Validate, checking the credentials only if credentials is set.
func (c *Config) validate(credentials bool) error {
	var p objstore.ConfigProblems
	if !validContainer(c.Container) {
		p.Add("Container (%q) must be 3-63 lower-case letters, digits and single dashes, starting with a letter or digit", c.Container)
	}
	p.Prefix(c.Prefix)
	switch {
	case !credentials: // ConfigFromURL: the caller sets them afterwards
	case c.ConnectionString != "" && (c.Account != "" || c.AccountKey != "" || c.Credential != nil):
		p.Add("set either ConnectionString or Account (with AccountKey or a Credential), not both")
	case c.ConnectionString == "" && c.Account == "":
		p.Add("ConnectionString or Account is required (Account with AccountKey, or alone for Entra ID tokens)")
	case c.AccountKey != "" && c.Credential != nil:
		p.Add("set either AccountKey or Credential, not both")
	}
	if c.ConnectionString == "" {
		p.Endpoint(c.Endpoint)
	}
	if c.MaxAttempts < 1 {
		p.Add("MaxAttempts (%d) must be >= 1", c.MaxAttempts)
	}
	if c.RetryDelay < 0 {
		p.Add("RetryDelay (%s) must be >= 0", c.RetryDelay)
	}
	if c.ListPageSize < 1 || c.ListPageSize > 5000 {
		p.Add("ListPageSize (%d) must be in 1..5000", c.ListPageSize)
	}
	return p.Err("azure")
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
// objstore.ParseURL; the bucket is the container) with defaults set. Parameters:
// account, endpoint, create_container (true/false), managed_identity (true/false),
// max_attempts. Credentials are not taken from the URL: set ConnectionString, or
// AccountKey, on the result (for example from AZURE_STORAGE_CONNECTION_STRING or
// AZURE_STORAGE_KEY) before Open, which checks them, or leave both empty for Entra ID
// tokens; ConfigFromURL validates everything else.
func ConfigFromURL(loc objstore.Location) (Config, error) {
	c := Config{Container: loc.Bucket, Prefix: loc.Prefix}
	err := objstore.ConfigFromURL(loc, "azure", "azure", urlConfig{&c},
		objstore.StringParam("account", &c.Account),
		objstore.StringParam("endpoint", &c.Endpoint),
		objstore.BoolParam("create_container", &c.CreateContainer),
		objstore.BoolParam("managed_identity", &c.ManagedIdentity),
		objstore.IntParam("max_attempts", &c.MaxAttempts))
	if err != nil {
		return Config{}, err
	}
	return c, nil
}

// urlConfig is a Config as ConfigFromURL validates it: without the credentials, which
// the caller sets afterwards.
type urlConfig struct{ *Config }

func (u urlConfig) Validate() error { return u.validate(false) }
