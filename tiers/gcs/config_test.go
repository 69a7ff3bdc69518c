package gcs_test

import (
	"strings"
	"testing"

	"github.com/soullabs/brainy/tiers/gcs"
	"github.com/soullabs/brainy/tiers/objstore"
)

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  gcs.Config
		want string // substring of the error; "" means valid
	}{
		{"default", gcs.DefaultConfig("b"), ""},
		{"emulator", gcs.EmulatorConfig("127.0.0.1:4443", "b"), ""},
		{"no bucket", gcs.Config{}, "Bucket is required"},
		{"bad endpoint", gcs.Config{Bucket: "b", Endpoint: "127.0.0.1:4443"}, "Endpoint"},
		{"page size", gcs.Config{Bucket: "b", ListPageSize: 1001}, "ListPageSize (1001)"},
		{"attempts", gcs.Config{Bucket: "b", MaxAttempts: -1}, "MaxAttempts (-1)"},
		{"all at once", gcs.Config{ListPageSize: -1, MaxAttempts: -1}, "MaxAttempts"},
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

func TestETag(t *testing.T) {
	for _, c := range []struct {
		etag string
		gen  int64
		ok   bool
	}{
		{"1", 1, true},
		{"1700000000000000", 1700000000000000, true},
		{"9223372036854775807", 9223372036854775807, true},
		{"", 0, false},
		{"0", 0, false},
		{"01", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{`"1"`, 0, false},
		{"9223372036854775808", 0, false},
		{"1a", 0, false},
	} {
		g, ok := gcs.ParseETag(c.etag)
		if g != c.gen || ok != c.ok {
			t.Errorf("ParseETag(%q) = %d, %v; want %d, %v", c.etag, g, ok, c.gen, c.ok)
		}
	}
}

// FuzzParseETag checks that ParseETag never panics and that the ETags it accepts are
// exactly the ones FormatETag produces.
func FuzzParseETag(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "01", "123456789", "9223372036854775808", `"7"`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, ok := gcs.ParseETag(s)
		if !ok {
			return
		}
		if g <= 0 {
			t.Fatalf("ParseETag(%q) accepted generation %d", s, g)
		}
		if back := gcs.FormatETag(g); back != s {
			t.Fatalf("ParseETag(%q) = %d, formats back as %q", s, g, back)
		}
	})
}

func TestConfigFromURL(t *testing.T) {
	for _, c := range []struct {
		url  string
		want func(*gcs.Config) // applied to DefaultConfig of the bucket; nil: want an error
	}{
		{"gs://data", func(*gcs.Config) {}},
		{"gs://data/p?anonymous=true&endpoint=http://127.0.0.1:4443/storage/v1/", func(c *gcs.Config) {
			c.Prefix, c.Anonymous, c.Endpoint = "p/", true, "http://127.0.0.1:4443/storage/v1/"
		}},
		{"gs://data?metadata_server=true", func(c *gcs.Config) { c.UseMetadataServer = true }},
		{"gs://data?metadata_server=1x", nil},
		{"gs://data?anonymous=yes", nil},
		{"gs://data?region=x", nil},
		{"s3://data", nil},
	} {
		t.Run(c.url, func(t *testing.T) {
			loc, err := objstore.ParseURL(c.url)
			if err != nil {
				t.Fatal(err)
			}
			got, err := gcs.ConfigFromURL(loc)
			if c.want == nil {
				if err == nil {
					t.Fatalf("ConfigFromURL(%s) = %+v, want an error", c.url, got)
				}
				return
			}
			want := gcs.DefaultConfig(loc.Bucket)
			c.want(&want)
			if err != nil || got != want {
				t.Fatalf("ConfigFromURL(%s) = %+v, %v; want %+v", c.url, got, err, want)
			}
		})
	}
}
