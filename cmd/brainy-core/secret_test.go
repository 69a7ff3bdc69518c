package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/soullabs/brainy/internal/coretest"
	"github.com/soullabs/brainy/internal/daemon"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
)

// TestNoBuiltInSecret: nodes on loopback with no secret derive their CA
// from a random per-user, per-host secret (mode 0600), never from a
// constant, and write no CA to disk: a certificate from one user's secret
// is trusted by that user's nodes and refused by another user's.
func TestNoBuiltInSecret(t *testing.T) {
	dir := t.TempDir()
	homeA, homeB := filepath.Join(dir, "user-a"), filepath.Join(dir, "user-b")
	a := coretest.StartCore(t, bin, []string{"XDG_CONFIG_HOME=" + homeA}, "--storage", filepath.Join(dir, "a"))
	b := coretest.StartCore(t, bin, []string{"XDG_CONFIG_HOME=" + homeB}, "--storage", filepath.Join(dir, "b"))

	secretFile := filepath.Join(homeA, "brainy", daemon.HostSecretName)
	st, err := os.Stat(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("the per-host secret has mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, "a", "tls", pki.CAKeyFile)); err == nil {
		t.Error("the node wrote the CA derived from the per-host secret to its storage")
	}

	// A client of user A: its certificate comes from A's secret.
	t.Setenv("XDG_CONFIG_HOME", homeA)
	secret, _, err := daemon.HostSecret()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.DeriveCA(secret)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := ca.NewBundleRole(pki.RoleEdge, "edge-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	client, err := transport.NewClient(transport.LocalConfig(creds.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	get := func(addr string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := client.Call(ctx, addr, wire.MethodGet, wire.AppendRequest(nil, &wire.Request{Tenant: "t", ID: "nobody"}))
		return err
	}
	var re *transport.RemoteError
	if err := get(a.QUICAddr); !errors.As(err, &re) { // not found: an answer
		t.Fatalf("user A's node refused user A's certificate: %v", err)
	}
	if err := get(b.QUICAddr); !errors.Is(err, transport.ErrUnauthenticated) {
		t.Fatalf("user B's node and user A's certificate: %v (want ErrUnauthenticated)", err)
	}
}
