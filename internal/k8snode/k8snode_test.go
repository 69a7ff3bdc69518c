package k8snode

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testToken = "test-token.abc"

// apiServer is a TLS server on 127.0.0.1 standing in for the API server:
// it checks the request, then answers status and body. The returned
// Config reaches it with a token file and its certificate as the CA.
func apiServer(t *testing.T, node string, status int, body string) Config {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/nodes/"+node {
			t.Errorf("request %s %s, want GET /api/v1/nodes/%s", r.Method, r.URL.Path, node)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
			t.Errorf("Authorization %q, want the token as a bearer", got)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(token, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return Config{Node: node, Host: host, Port: port, TokenFile: token, CAFile: ca}
}

func nodeJSON(labels string) string {
	return `{"kind":"Node","apiVersion":"v1","metadata":{"name":"n1","labels":{` + labels + `}},"status":{}}`
}

func TestZone(t *testing.T) {
	for _, tc := range []struct {
		name, labels, want string
	}{
		{"topology label", `"kubernetes.io/hostname":"n1","topology.kubernetes.io/zone":"eu-west-1a","failure-domain.beta.kubernetes.io/zone":"old"`, "eu-west-1a"},
		{"fallback label", `"failure-domain.beta.kubernetes.io/zone":"us-east-1b"`, "us-east-1b"},
		{"empty topology label", `"topology.kubernetes.io/zone":"","failure-domain.beta.kubernetes.io/zone":"us-east-1c"`, "us-east-1c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := apiServer(t, "n1", http.StatusOK, nodeJSON(tc.labels))
			got, err := Zone(context.Background(), cfg)
			if err != nil || got != tc.want {
				t.Fatalf("Zone: %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestZoneErrors(t *testing.T) {
	forbidden := `{"kind":"Status","apiVersion":"v1","status":"Failure","message":"nodes \"n1\" is forbidden: User \"system:serviceaccount:default:brainy-core\" cannot get resource \"nodes\" in API group \"\" at the cluster scope","reason":"Forbidden","code":403}`
	for _, tc := range []struct {
		name   string
		status int
		body   string
		edit   func(*Config)
		want   []string
	}{
		{name: "missing label", status: http.StatusOK, body: nodeJSON(`"kubernetes.io/hostname":"n1"`),
			want: []string{"node n1 has no zone", ZoneLabel, LegacyZoneLabel}},
		{name: "403", status: http.StatusForbidden, body: forbidden,
			want: []string{"403 Forbidden", "needs get on nodes", `cannot get resource \"nodes\"`, "/api/v1/nodes/n1"}},
		{name: "500 with a long body", status: http.StatusInternalServerError, body: strings.Repeat("x", 10000),
			want: []string{"500 Internal Server Error", strings.Repeat("x", 256) + "...\""}},
		{name: "redirect", status: http.StatusFound, body: "elsewhere", want: []string{"302 Found"}},
		{name: "oversized", status: http.StatusOK, body: nodeJSON(`"a":"` + strings.Repeat("x", MaxBodyBytes) + `"`),
			want: []string{"larger than 1048576 bytes"}},
		{name: "not JSON", status: http.StatusOK, body: "<html>", want: []string{"not a node object"}},
		{name: "unreadable token", edit: func(c *Config) { c.TokenFile = filepath.Join(t.TempDir(), "none") },
			want: []string{"reading the service-account token", "no such file"}},
		{name: "empty token", edit: func(c *Config) {
			c.TokenFile = filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(c.TokenFile, []byte("\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"token", "is empty"}},
		{name: "unreadable CA", edit: func(c *Config) { c.CAFile = filepath.Join(t.TempDir(), "none") },
			want: []string{"reading the API server's CA"}},
		{name: "CA without a certificate", edit: func(c *Config) { c.CAFile = c.TokenFile },
			want: []string{"holds no PEM certificate"}},
		{name: "another CA", edit: func(c *Config) {
			c.CAFile = filepath.Join(t.TempDir(), "ca.crt")
			if err := os.WriteFile(c.CAFile, selfSignedCA(t), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"certificate signed by unknown authority"}},
		{name: "bad node name", edit: func(c *Config) { c.Node = "../../secrets" }, want: []string{"want a DNS subdomain"}},
		{name: "unexpanded variable", edit: func(c *Config) { c.Node = "$(NODE_NAME)" }, want: []string{"unexpanded variable"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := tc.status
			if status == 0 {
				status = http.StatusOK
			}
			cfg := apiServer(t, "n1", status, tc.body)
			if tc.edit != nil {
				tc.edit(&cfg)
			}
			got, err := Zone(context.Background(), cfg)
			if err == nil {
				t.Fatalf("Zone: %q, no error", got)
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
}

// TestZoneDefaults: without a host, Zone says it is not in a pod; the
// host and port come from the variables Kubernetes sets.
func TestZoneDefaults(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	if _, err := Zone(context.Background(), Config{Node: "n1"}); err == nil || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST is unset") {
		t.Fatalf("outside a pod: %v", err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	c := Config{Node: "n1"}.withDefaults()
	if c.Host != "10.96.0.1" || c.Port != "443" || c.TokenFile != TokenPath || c.CAFile != CAPath || c.Timeout != DefaultTimeout {
		t.Fatalf("defaults: %+v", c)
	}
	cfg := apiServer(t, "n1", http.StatusOK, nodeJSON(`"topology.kubernetes.io/zone":"z1"`))
	t.Setenv("KUBERNETES_SERVICE_HOST", cfg.Host)
	t.Setenv("KUBERNETES_SERVICE_PORT", cfg.Port)
	cfg.Host, cfg.Port = "", ""
	if z, err := Zone(context.Background(), cfg); err != nil || z != "z1" {
		t.Fatalf("from the environment: %q, %v", z, err)
	}
}

func TestCheckNode(t *testing.T) {
	for _, ok := range []string{"n1", "ip-10-0-1-5.eu-west-1.compute.internal", "gke-pool-1-abc"} {
		if err := CheckNode(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "N1", "a/b", "a?b", "-a", "a..b", "$(NODE_NAME)", strings.Repeat("a", 254)} {
		if err := CheckNode(bad); err == nil {
			t.Errorf("%q passed", bad)
		}
	}
}

// selfSignedCA is a CA certificate (PEM) that signed nothing.
func selfSignedCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
