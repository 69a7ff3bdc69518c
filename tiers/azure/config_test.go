package azure_test

import (
	"strings"
	"testing"

	"github.com/soullabs/brainy/tiers/azure"
	"github.com/soullabs/brainy/tiers/objstore"
)

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  azure.Config
		want string // substring of the error; "" means valid
	}{
		{"connection string", azure.DefaultConfig("AccountName=a;AccountKey=k", "data"), ""},
		{"account key", azure.Config{Container: "data-1", Account: "acct", AccountKey: "a2V5"}, ""},
		{"no credentials", azure.Config{Container: "data"}, "required"},
		{"both credentials", azure.Config{Container: "data", ConnectionString: "x", Account: "a", AccountKey: "k"}, "not both"},
		{"account alone: entra id", azure.Config{Container: "data", Account: "acct"}, ""},
		{"connection string and credential", azure.Config{Container: "data", ConnectionString: "x", Credential: fakeCredential{}}, "not both"},
		{"key and credential", azure.Config{Container: "data", Account: "a", AccountKey: "k", Credential: fakeCredential{}}, "not both"},
		{"short container", azure.Config{Container: "ab", ConnectionString: "x"}, "Container"},
		{"upper container", azure.Config{Container: "Data", ConnectionString: "x"}, "Container"},
		{"double dash", azure.Config{Container: "a--b", ConnectionString: "x"}, "Container"},
		{"trailing dash", azure.Config{Container: "abc-", ConnectionString: "x"}, "Container"},
		{"bad endpoint", azure.Config{Container: "data", Account: "a", AccountKey: "k", Endpoint: "localhost"}, "Endpoint"},
		{"page size", azure.Config{Container: "data", ConnectionString: "x", ListPageSize: 5001}, "ListPageSize (5001)"},
		{"retry delay", azure.Config{Container: "data", ConnectionString: "x", RetryDelay: -1}, "RetryDelay"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.EnsureDefaults()
			before := cfg
			err := cfg.Validate()
			if cfg != before {
				t.Fatal("Validate changed the config")
			}
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestDefaultEndpoint(t *testing.T) {
	c := azure.Config{Container: "data", Account: "acct", AccountKey: "a2V5"}
	c.EnsureDefaults()
	if c.Endpoint != "https://acct.blob.core.windows.net" {
		t.Fatalf("Endpoint = %q", c.Endpoint)
	}
}

func TestConfigFromURL(t *testing.T) {
	for _, c := range []struct {
		url  string
		want func(*azure.Config) // applied to the Config of container "data" with defaults set; nil: want an error
	}{
		{"azure://data", func(*azure.Config) {}},
		{"azure://data/p?account=acct&create_container=true&max_attempts=2", func(c *azure.Config) {
			c.Prefix, c.Account, c.CreateContainer, c.MaxAttempts = "p/", "acct", true, 2
			c.Endpoint = "https://acct.blob.core.windows.net"
		}},
		{"azure://data?endpoint=http://127.0.0.1:10000/devstoreaccount1", func(c *azure.Config) {
			c.Endpoint = "http://127.0.0.1:10000/devstoreaccount1"
		}},
		{"azure://data?account=acct&managed_identity=true", func(c *azure.Config) {
			c.Account, c.ManagedIdentity, c.Endpoint = "acct", true, "https://acct.blob.core.windows.net"
		}},
		{"azure://data?managed_identity=maybe", nil},
		{"azure://data?key=secret", nil},
		{"azure://data?create_container=maybe", nil},
		{"s3://data", nil},
		// Validated like the other adapters' (credentials excepted, the caller sets them).
		{"azure://data_1", nil},
		{"azure://data?max_attempts=-1", nil},
		{"azure://data?endpoint=localhost", nil},
	} {
		t.Run(c.url, func(t *testing.T) {
			loc, err := objstore.ParseURL(c.url)
			if err != nil {
				t.Fatal(err)
			}
			got, err := azure.ConfigFromURL(loc)
			if c.want == nil {
				if err == nil {
					t.Fatalf("ConfigFromURL(%s) = %+v, want an error", c.url, got)
				}
				return
			}
			want := azure.Config{Container: "data"}
			want.EnsureDefaults()
			c.want(&want)
			if err != nil || got != want {
				t.Fatalf("ConfigFromURL(%s) = %+v, %v; want %+v", c.url, got, err, want)
			}
		})
	}
}
