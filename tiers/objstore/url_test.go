package objstore_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/soullabs/brainy/tiers/objstore"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in   string
		want objstore.Location // zero Scheme: want an error
	}{
		{"s3://brainy-data", objstore.Location{Scheme: "s3", Bucket: "brainy-data", Params: map[string]string{}}},
		{"s3://brainy-data/", objstore.Location{Scheme: "s3", Bucket: "brainy-data", Params: map[string]string{}}},
		{"s3://brainy-data/node-1", objstore.Location{Scheme: "s3", Bucket: "brainy-data", Prefix: "node-1/", Params: map[string]string{}}},
		{"s3://b.c-d/a/b/?region=eu-west-1&endpoint=http://127.0.0.1:9000",
			objstore.Location{Scheme: "s3", Bucket: "b.c-d", Prefix: "a/b/",
				Params: map[string]string{"region": "eu-west-1", "endpoint": "http://127.0.0.1:9000"}}},
		{"azure://data/p%20q", objstore.Location{Scheme: "azure", Bucket: "data", Prefix: "p q/", Params: map[string]string{}}},
		{"gs://my_bucket/x/?anonymous=true", objstore.Location{Scheme: "gs", Bucket: "my_bucket", Prefix: "x/", Params: map[string]string{"anonymous": "true"}}},
		{"mem://", objstore.Location{Scheme: "mem", Params: map[string]string{}}},
		{"", objstore.Location{}},
		{"brainy-data", objstore.Location{}},
		{"ftp://bucket", objstore.Location{}},
		{"S3://bucket", objstore.Location{}},
		{"s3://", objstore.Location{}},
		{"s3://ab", objstore.Location{}},
		{"s3://Upper", objstore.Location{}},
		{"s3://-bucket", objstore.Location{}},
		{"s3://key:secret@bucket", objstore.Location{}},
		{"s3://bucket:9000", objstore.Location{}},
		{"s3://bucket//p", objstore.Location{}},
		{"s3://bucket/a//b", objstore.Location{}},
		{"s3://bucket/p%zz", objstore.Location{}},
		{"s3://bucket/p%0a", objstore.Location{}},
		{"s3://bucket/p#frag", objstore.Location{}},
		{"s3://bucket?region=a&region=b", objstore.Location{}},
		{"s3://bucket?=x", objstore.Location{}},
		{"mem://bucket", objstore.Location{}},
	} {
		t.Run(c.in, func(t *testing.T) {
			got, err := objstore.ParseURL(c.in)
			if c.want.Scheme == "" {
				if err == nil || !errors.Is(err, objstore.ErrInvalidArgument) {
					t.Fatalf("ParseURL(%q) = %+v, %v; want an ErrInvalidArgument", c.in, got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ParseURL(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			}
		})
	}
}

func TestTakeParams(t *testing.T) {
	loc, err := objstore.ParseURL("s3://bucket?region=r&endpoint=http://h")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	set := func(k, v string) error { got[k] = v; return nil }
	if err := loc.TakeParams(set, "region", "endpoint", "unused"); err != nil || len(got) != 2 {
		t.Fatalf("TakeParams = %v, set %v", err, got)
	}
	if err := loc.TakeParams(set, "region"); !errors.Is(err, objstore.ErrInvalidArgument) {
		t.Fatalf("TakeParams with an unknown parameter = %v, want ErrInvalidArgument", err)
	}
}

// FuzzParseURL checks that ParseURL never panics, that what it accepts is well formed,
// and that String round-trips.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://bucket/prefix/?region=r", "azure://data", "gs://b_c/x%20y", "mem://",
		"s3://a@b", "s3://bucket/p%zz", "s3://bucket?a=1&a=2", "s3://bucket/ü/?x=%2F"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := objstore.ParseURL(s)
		if err != nil {
			if !errors.Is(err, objstore.ErrInvalidArgument) {
				t.Fatalf("ParseURL(%q) = %v, not ErrInvalidArgument", s, err)
			}
			return
		}
		if loc.Prefix != "" && (loc.Prefix[len(loc.Prefix)-1] != '/' || objstore.ValidKey(loc.Prefix) != nil) {
			t.Fatalf("ParseURL(%q) gave prefix %q", s, loc.Prefix)
		}
		again, err := objstore.ParseURL(loc.String())
		if err != nil || !reflect.DeepEqual(again, loc) {
			t.Fatalf("ParseURL(%q) = %+v; String %q parses to %+v, %v", s, loc, loc.String(), again, err)
		}
	})
}
