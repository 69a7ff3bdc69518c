package s3_test

import (
	"strings"
	"testing"

	"github.com/soullabs/brainy/tiers/objstore"
	"github.com/soullabs/brainy/tiers/s3"
)

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  s3.Config
		want string // substring of the error; "" means valid
	}{
		{"default", s3.DefaultConfig("b"), ""},
		{"local", s3.LocalConfig("http://127.0.0.1:9000", "b", "ak", "sk"), ""},
		{"no bucket", s3.Config{}, "Bucket is required"},
		{"bad endpoint", s3.Config{Bucket: "b", Endpoint: "127.0.0.1:9000"}, "Endpoint"},
		{"bad style", s3.Config{Bucket: "b", AddressingStyle: "dns"}, "AddressingStyle"},
		{"half credentials", s3.Config{Bucket: "b", AccessKeyID: "ak"}, "set together"},
		{"token alone", s3.Config{Bucket: "b", SessionToken: "t"}, "SessionToken"},
		{"page size", s3.Config{Bucket: "b", ListPageSize: 1001}, "ListPageSize (1001)"},
		{"attempts", s3.Config{Bucket: "b", MaxAttempts: -1}, "MaxAttempts (-1)"},
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

func TestDefaults(t *testing.T) {
	c := s3.DefaultConfig("b")
	if c.Region != "us-east-1" || c.AddressingStyle != "auto" || c.MaxAttempts != 3 || c.ListPageSize != 1000 || c.UseIMDS {
		t.Fatalf("DefaultConfig = %+v", c)
	}
}

func TestConfigFromURL(t *testing.T) {
	for _, c := range []struct {
		url  string
		want func(*s3.Config) // applied to DefaultConfig of the bucket; nil: want an error
	}{
		{"s3://data", func(*s3.Config) {}},
		{"s3://data/node-1?region=eu-west-1", func(c *s3.Config) { c.Prefix, c.Region = "node-1/", "eu-west-1" }},
		{"s3://data?endpoint=http://127.0.0.1:9000&addressing_style=path&imds=true&max_attempts=5", func(c *s3.Config) {
			c.Endpoint, c.AddressingStyle, c.UseIMDS, c.MaxAttempts = "http://127.0.0.1:9000", "path", true, 5
		}},
		{"s3://data?imds=maybe", nil},
		{"s3://data?max_attempts=0x", nil},
		{"s3://data?addressing_style=dns", nil},
		{"s3://data?secret=x", nil},
		{"gs://data", nil},
	} {
		t.Run(c.url, func(t *testing.T) {
			loc, err := objstore.ParseURL(c.url)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s3.ConfigFromURL(loc)
			if c.want == nil {
				if err == nil {
					t.Fatalf("ConfigFromURL(%s) = %+v, want an error", c.url, got)
				}
				return
			}
			want := s3.DefaultConfig(loc.Bucket)
			c.want(&want)
			if err != nil || got != want {
				t.Fatalf("ConfigFromURL(%s) = %+v, %v; want %+v", c.url, got, err, want)
			}
		})
	}
}
