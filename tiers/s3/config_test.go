package s3_test

import (
	"strings"
	"testing"

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
