package objstore

import (
	"fmt"
	"net/url"
	"strings"
)

// Location is a parsed storage URL: scheme://bucket/prefix?param=value&...
//
//	s3://brainy-data/node-1/?region=eu-west-1&endpoint=http://127.0.0.1:9000
//	azure://container/prefix/?account=myaccount
//	gs://bucket/prefix/
//	mem://
//
// ParseURL checks only the shape; each adapter's ConfigFromURL interprets Params and
// rejects the ones it does not know. Credentials never appear in URLs (they end up in
// logs and process lists); adapters take them from their Config or environment.
type Location struct {
	// Scheme is the backend: "s3", "azure", "gs" or "mem".
	Scheme string
	// Bucket is the bucket or container name (empty only for "mem").
	Bucket string
	// Prefix is the key prefix, empty or ending in "/".
	Prefix string
	// Params are the query parameters, each given at most once.
	Params map[string]string
}

// Schemes that ParseURL accepts.
var Schemes = []string{"s3", "azure", "gs", "mem"}

// ParseURL parses a storage URL into a Location. A prefix without a trailing slash gets
// one ("s3://b/p" has prefix "p/"). Errors wrap ErrInvalidArgument.
func ParseURL(raw string) (Location, error) {
	bad := func(format string, args ...any) (Location, error) {
		return Location{}, fmt.Errorf("objstore: storage URL %q: %s: %w", raw, fmt.Sprintf(format, args...), ErrInvalidArgument)
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return bad("want scheme://bucket/prefix")
	}
	known := false
	for _, s := range Schemes {
		known = known || s == scheme
	}
	if !known {
		return bad("unknown scheme %q (want one of %s)", scheme, strings.Join(Schemes, ", "))
	}
	rest, query, _ := strings.Cut(rest, "?")
	if strings.Contains(rest, "#") || strings.Contains(query, "#") {
		return bad("fragments are not allowed")
	}
	bucket, path, _ := strings.Cut(rest, "/")
	if strings.Contains(bucket, "@") {
		return bad("credentials do not belong in the URL")
	}
	if scheme == "mem" {
		if bucket != "" || path != "" {
			return bad("mem:// takes no bucket or prefix")
		}
	} else if !validBucket(bucket) {
		return bad("bucket %q must be 3-63 characters of a-z, 0-9, '.', '-' and '_', starting and ending with a letter or digit", bucket)
	}
	prefix, err := url.PathUnescape(path)
	if err != nil {
		return bad("prefix: %v", err)
	}
	if strings.HasPrefix(prefix, "/") || strings.Contains(prefix, "//") {
		return bad("prefix %q has an empty path segment", prefix)
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if prefix != "" {
		if err := ValidKey(prefix); err != nil || len(prefix) > 512 {
			return bad("prefix %q must be valid UTF-8 without control characters, at most 512 bytes", prefix)
		}
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return bad("query: %v", err)
	}
	params := make(map[string]string, len(values))
	for k, vs := range values {
		if k == "" || len(vs) != 1 {
			return bad("parameter %q must be given once", k)
		}
		params[k] = vs[0]
	}
	return Location{Scheme: scheme, Bucket: bucket, Prefix: prefix, Params: params}, nil
}

// String formats l as a storage URL that ParseURL parses back to l.
func (l Location) String() string {
	var b strings.Builder
	b.WriteString(l.Scheme + "://" + l.Bucket)
	if l.Prefix != "" {
		b.WriteString("/" + (&url.URL{Path: l.Prefix}).EscapedPath())
	}
	if len(l.Params) > 0 {
		q := url.Values{}
		for k, v := range l.Params {
			q.Set(k, v)
		}
		b.WriteString("?" + q.Encode())
	}
	return b.String()
}

// validBucket accepts names that are valid on at least one backend; each adapter's
// Config.Validate applies that backend's stricter rules.
func validBucket(s string) bool {
	if len(s) < 3 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || i == len(s)-1 || (c != '.' && c != '-' && c != '_')) {
			return false
		}
	}
	return true
}

// TakeParams removes the parameters named in keys from l.Params, calling set for each
// present one, and reports any parameter left over as unknown. Adapters use it in
// ConfigFromURL.
func (l Location) TakeParams(set func(key, value string) error, keys ...string) error {
	left := make(map[string]bool, len(l.Params))
	for k := range l.Params {
		left[k] = true
	}
	for _, k := range keys {
		v, ok := l.Params[k]
		if !ok {
			continue
		}
		delete(left, k)
		if err := set(k, v); err != nil {
			return fmt.Errorf("objstore: storage URL parameter %s=%q: %w: %w", k, v, ErrInvalidArgument, err)
		}
	}
	for k := range left {
		return fmt.Errorf("objstore: unknown storage URL parameter %q for %s:// (known: %s): %w",
			k, l.Scheme, strings.Join(keys, ", "), ErrInvalidArgument)
	}
	return nil
}
