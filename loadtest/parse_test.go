package loadtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		in, addr, path, err string
	}{
		{in: "http://127.0.0.1:8080", addr: "127.0.0.1:8080", path: "/"},
		{in: "http://localhost/v1/items/k{key}", addr: "localhost:80", path: "/v1/items/k7"},
		{in: "https://[::1]/a?w={worker}&s={seq}", addr: "[::1]:443", path: "/a?w=3&s=9"},
		{in: "http://[::1]:9/x", addr: "[::1]:9", path: "/x"},
		{in: "http://h:1?q={key}", addr: "h:1", path: "/?q=7"},
		{in: "http://h/{{literal}}", addr: "h:80", path: "/{literal}"},
		{in: "ftp://h/", err: "http:// or https://"},
		{in: "http:///x", err: "with a host"},
		{in: "http://h{key}/", err: "with a host"},
		{in: "http://h:99999/", err: "bad port"},
		{in: "http://h/{nope}", err: "unknown placeholder"},
		{in: "http://h/{key", err: "unclosed"},
		{in: "http://h/a}b", err: "unmatched"},
		{in: "http://h/a b", err: "spaces"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			tm, err := ParseTemplate(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tm.Addr != tt.addr {
				t.Errorf("addr = %q, want %q", tm.Addr, tt.addr)
			}
			if got := string(tm.AppendPath(nil, 7, 9, 3)); got != tt.path {
				t.Errorf("path = %q, want %q", got, tt.path)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.255.0.9": true, "::1": true, "localhost": true, "LocalHost.": true,
		"10.0.0.1": false, "example.com": false, "::": false, "0.0.0.0": false, "localhost.evil.com": false,
	} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		err  string // "" means valid
	}{
		{"default", func(*Config) {}, ""},
		{"remote refused", func(c *Config) { c.Target = "http://192.0.2.1/" }, "not loopback"},
		{"remote allowed", func(c *Config) { c.Target = "http://192.0.2.1/"; c.AllowRemote = true }, ""},
		{"name refused", func(c *Config) { c.Target = "http://brainy.example/" }, "not loopback"},
		{"ipv6 loopback", func(c *Config) { c.Target = "http://[::1]:8080/" }, ""},
		{"unbounded", func(c *Config) { c.Duration = -1 }, "Requests (0) must be > 0"},
		{"count only", func(c *Config) { c.Duration = -1; c.Requests = 10 }, ""},
		{"warmup too long", func(c *Config) { c.Warmup = time.Minute }, "Warmup"},
		{"bad mix", func(c *Config) { c.Mix = "read=0" }, "sum to 0"},
		{"bad dist", func(c *Config) { c.KeyDist = "zipf:2" }, "theta"},
		{"bad header", func(c *Config) { c.Headers = []string{"nocolon"} }, "Name: value"},
		{"preload needs items", func(c *Config) { c.Preload = true }, "Preload"},
		{"items with template", func(c *Config) { c.Workload = WorkloadItems; c.Target = "http://127.0.0.1/{key}" }, "base URL"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "Rate"},
		{"all at once", func(c *Config) { c.Connections = -1; c.Keys = -1 }, "Keys (-1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig("http://127.0.0.1:8080/")
			tt.mod(&c)
			before := c.Label
			err := c.Validate()
			if c.Label != before {
				t.Errorf("Validate changed the config")
			}
			if tt.err == "" && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("err = %v, want %q", err, tt.err)
			}
		})
	}
	var c Config
	c.EnsureDefaults()
	if c.Connections != 16 || c.Duration != 10*time.Second || c.Mix != "read=90,write=10" || c.Seed != 1 {
		t.Errorf("EnsureDefaults: %+v", c)
	}
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		in, canon, err string
	}{
		{in: "read=90,write=10", canon: "read=90,write=10"},
		{in: " write = 1 , READ=3,add=0", canon: "read=3,write=1"},
		{in: "add=5", canon: "add=5"},
		{in: "", err: "empty"},
		{in: "read", err: "op=weight"},
		{in: "read=1,read=2", err: "twice"},
		{in: "delete=1", err: "unknown op"},
		{in: "read=-1", err: "integer"},
		{in: "read=1.5", err: "integer"},
		{in: "read=0,write=0", err: "sum to 0"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := ParseMix(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.String() != tt.canon {
				t.Errorf("String() = %q, want %q", m.String(), tt.canon)
			}
		})
	}
}

func TestParseKeyDist(t *testing.T) {
	for in, want := range map[string]string{
		"uniform": "uniform", "zipf": "zipf:0.99", "zipfian:0.5": "zipf:0.5", "seq": "sequential",
		"sequential": "sequential", "hot": "hot", "single": "hot",
	} {
		d, err := ParseKeyDist(in)
		if err != nil || d.String() != want {
			t.Errorf("ParseKeyDist(%q) = %v, %v; want %s", in, d, err, want)
		}
	}
	for _, in := range []string{"", "zipf:0", "zipf:1", "zipf:x", "uniform:3", "normal"} {
		if _, err := ParseKeyDist(in); err == nil {
			t.Errorf("ParseKeyDist(%q) accepted", in)
		}
	}
}

func TestGenBody(t *testing.T) {
	for _, size := range []int{0, 10, 45, 100, 4096} {
		b := genBody("thing", size, 3)
		if size >= 50 && len(b) != size {
			t.Errorf("size %d: got %d bytes", size, len(b))
		}
		if !strings.HasPrefix(string(b), `{"type":"thing","data":{"n":3,"pad":"`) || !strings.HasSuffix(string(b), `"}}`) {
			t.Errorf("size %d: body %s", size, b)
		}
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"http://127.0.0.1:8080/v1/items/{key}", "https://[::1]/a?b={seq}&{{x}}", "http://h", "http://h:1?q", "http://a/}}{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseTemplate(s)
		if err != nil {
			return
		}
		again, err := ParseTemplate(tm.String())
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", tm.String(), s, err)
		}
		if again.String() != tm.String() || again.Addr != tm.Addr {
			t.Fatalf("round trip: %q -> %q", tm.String(), again.String())
		}
		if a, b := string(tm.AppendPath(nil, 1, 2, 3)), string(again.AppendPath(nil, 1, 2, 3)); a != b {
			t.Fatalf("paths differ: %q vs %q", a, b)
		}
	})
}

func FuzzParseMix(f *testing.F) {
	for _, s := range []string{"read=90,write=10", "add=1", "read=1,read=1", " Write = 0 ,read=7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMix(s)
		if err != nil {
			return
		}
		again, err := ParseMix(m.String())
		if err != nil || again != m {
			t.Fatalf("round trip of %q: %q -> %v, %v", s, m.String(), again, err)
		}
	})
}

func FuzzParseKeyDist(f *testing.F) {
	for _, s := range []string{"uniform", "zipf:0.99", "seq", "hot"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseKeyDist(s)
		if err != nil {
			return
		}
		again, err := ParseKeyDist(d.String())
		if err != nil || again != d {
			t.Fatalf("round trip of %q: %q -> %v, %v", s, d.String(), again, err)
		}
		if _, err := NewKeyGen(d, 10); err != nil {
			t.Fatal(err)
		}
	})
}

// TestGeneratedMetadata: bodies with metadata fields are valid items whose
// metadata has the fields asked for, with values differing between
// bodies.
func TestGeneratedMetadata(t *testing.T) {
	var metas []string
	for v := range 3 {
		var it struct {
			Type     string                     `json:"type"`
			Metadata map[string]json.RawMessage `json:"metadata"`
		}
		b := withMetadata(genBody("thing", 100, v), 6, v)
		if err := json.Unmarshal(b, &it); err != nil || it.Type != "thing" || len(it.Metadata) != 6 {
			t.Fatalf("%s: %+v %v", b, it, err)
		}
		metas = append(metas, string(it.Metadata["f0"])+string(it.Metadata["f1"]))
	}
	if metas[0] == metas[1] || metas[1] == metas[2] {
		t.Fatalf("the bodies' metadata does not vary: %v", metas)
	}
	if b := withMetadata(genBody("thing", 100, 1), 0, 1); !bytes.Equal(b, genBody("thing", 100, 1)) {
		t.Fatalf("no fields asked for, metadata added: %s", b)
	}
}
