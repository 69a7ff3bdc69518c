package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/internal/daemon"
	"github.com/soullabs/brainy/transport/pki"
)

// TestNoBuiltInSecret: nodes on loopback with no secret derive their CA
// from a random per-user, per-host secret (mode 0600), never from a
// constant: two users' nodes get different CAs, one user's nodes the same.
func TestNoBuiltInSecret(t *testing.T) {
	dir := t.TempDir()
	homeA, homeB := filepath.Join(dir, "user-a"), filepath.Join(dir, "user-b")
	caOf := func(home, name, ip string) []byte {
		t.Helper()
		data := filepath.Join(dir, name)
		p := coretest.Start(t, bin, []string{"XDG_CONFIG_HOME=" + home}, "--bind", ip, "--storage", data)
		p.Kill()
		ca, err := pki.LoadCA(filepath.Join(data, "tls", pki.CACertFile), filepath.Join(data, "tls", pki.CAKeyFile))
		if err != nil {
			t.Fatalf("%s's CA: %v", name, err)
		}
		return ca.Cert.RawSubjectPublicKeyInfo
	}
	a1 := caOf(homeA, "a1", "127.0.0.81")
	a2 := caOf(homeA, "a2", "127.0.0.82")
	b1 := caOf(homeB, "b1", "127.0.0.83")
	if !bytes.Equal(a1, a2) {
		t.Error("two nodes of one user on one host derived different CAs: they could not join")
	}
	if bytes.Equal(a1, b1) {
		t.Error("two users' nodes derived the same CA: the secret is not per user")
	}
	st, err := os.Stat(filepath.Join(homeA, "brainy", daemon.HostSecretName))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("the per-host secret has mode %v, want 0600", st.Mode().Perm())
	}
}
