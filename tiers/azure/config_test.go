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
	loc, err := objstore.ParseURL("azure://data/p?account=acct&create_container=true&max_attempts=2")
	if err != nil {
		t.Fatal(err)
	}
	got, err := azure.ConfigFromURL(loc)
	want := azure.Config{Container: "data", Prefix: "p/", Account: "acct", CreateContainer: true, MaxAttempts: 2}
	if err != nil || got != want {
		t.Fatalf("ConfigFromURL = %+v, %v; want %+v", got, err, want)
	}
	for _, bad := range []string{"azure://data?key=secret", "azure://data?create_container=maybe", "s3://data"} {
		loc, err := objstore.ParseURL(bad)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := azure.ConfigFromURL(loc); err == nil {
			t.Fatalf("ConfigFromURL(%s) = %+v, want an error", bad, c)
		}
	}
}
