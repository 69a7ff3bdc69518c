package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node-1")
	b1, err := LoadOrCreate(dir, "node-1", []string{"127.0.0.1", "node-1.local"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		perm os.FileMode
	}{{CACertFile, 0o644}, {CAKeyFile, 0o600}, {NodeCertFile, 0o644}, {NodeKeyFile, 0o600}} {
		st, err := os.Stat(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != f.perm {
			t.Errorf("%s mode %v, want %v", f.name, st.Mode().Perm(), f.perm)
		}
	}
	leaf := b1.Certificate.Leaf
	if b1.NodeName != "node-1" || leaf.Subject.CommonName != "node-1" {
		t.Fatalf("node name %q", b1.NodeName)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: b1.CAs, DNSName: ServerName,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Fatalf("node certificate does not verify against the CA: %v", err)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatal(err)
	}

	// A second start loads the same certificate.
	b2, err := LoadOrCreate(dir, "ignored", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !b2.Certificate.Leaf.Equal(leaf) {
		t.Fatal("second start issued a new certificate")
	}

	// A node whose directory holds the cluster CA gets a certificate from it.
	dir2 := filepath.Join(t.TempDir(), "node-2")
	if err := os.MkdirAll(dir2, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{CACertFile, CAKeyFile} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir2, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b3, err := LoadOrCreate(dir2, "node-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b3.Certificate.Leaf.Verify(x509.VerifyOptions{
		Roots: b1.CAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Fatalf("second node's certificate is not from the cluster CA: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                string
		ca, cert, key       string
		wantInvalid, anyErr bool
	}{
		{name: "missing files", ca: filepath.Join(dir, "nope"), cert: garbage, key: garbage, anyErr: true},
		{name: "garbage CA", ca: garbage, cert: garbage, key: garbage, wantInvalid: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.ca, tt.cert, tt.key)
			if err == nil || (tt.wantInvalid && !errors.Is(err, ErrInvalid)) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// TestDeriveCA: two nodes given the same secret trust each other's
// certificates; a node with another secret is refused.
func TestDeriveCA(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a, err := DeriveCA(secret)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DeriveCA(secret)
	if err != nil {
		t.Fatal(err)
	}
	other, err := DeriveCA([]byte("another secret, 32 bytes long!!!"))
	if err != nil {
		t.Fatal(err)
	}
	if !a.Key.Equal(b.Key) {
		t.Fatal("the same secret derived two different keys")
	}
	nodeB, err := b.NewBundle("node-b", nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(nodeB.Certificate.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(a.Cert)
	opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		t.Fatalf("a certificate from the same secret is not trusted: %v", err)
	}
	otherPool := x509.NewCertPool()
	otherPool.AddCert(other.Cert)
	opts.Roots = otherPool
	if _, err := leaf.Verify(opts); err == nil {
		t.Fatal("a certificate from another secret is trusted")
	}
	if _, err := DeriveCA([]byte("short")); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
}

// TestStretchSecret: what protects the cluster is never a fast hash of the
// secret, and a secret without variety is refused with advice.
func TestStretchSecret(t *testing.T) {
	secret := []byte("a cluster secret of reasonable length")
	root, err := StretchSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	plain := sha256.Sum256(secret)
	if len(root) != 32 || bytes.Equal(root, plain[:]) || bytes.Contains(root, secret[:8]) {
		t.Fatalf("root %x is not a stretched derivation", root)
	}
	if again, _ := StretchSecret(secret); !bytes.Equal(root, again) {
		t.Fatal("the same secret stretched to two roots")
	}
	for _, weak := range []string{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "abababababababababab", "short"} {
		if _, err := StretchSecret([]byte(weak)); err == nil || !strings.Contains(err.Error(), "openssl rand") {
			t.Errorf("secret %q: %v, want a refusal saying how to make one", weak, err)
		}
	}
}

// TestRefuseWellKnownCA: the CA older versions derived from a built-in
// value is recognised in a tls directory; a random CA is not.
func TestRefuseWellKnownCA(t *testing.T) {
	key, err := caKey([]byte(formerLoopbackSecret))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "brainy cluster CA (derived)"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	known := t.TempDir()
	if err := os.WriteFile(filepath.Join(known, CACertFile), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RefuseWellKnownCA(known); !errors.Is(err, ErrInvalid) {
		t.Fatalf("the well-known CA: %v, want ErrInvalid", err)
	}
	random := t.TempDir()
	if _, err := LoadOrCreate(random, "node-1", nil); err != nil {
		t.Fatal(err)
	}
	if err := RefuseWellKnownCA(random); err != nil {
		t.Fatalf("a random CA: %v", err)
	}
	if err := RefuseWellKnownCA(t.TempDir()); err != nil {
		t.Fatalf("an empty directory: %v", err)
	}
}
