package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"
)

// TestRoles: a certificate carries the role it was issued for; one issued
// before roles existed counts as a core's; no other role can be issued.
func TestRoles(t *testing.T) {
	ca, err := NewCA("roles")
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []Role{RoleCore, RoleEdge} {
		certPEM, _, err := ca.IssueRole(role, "n", nil)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(certPEM)
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if got := RoleOf(cert); got != role {
			t.Errorf("issued for %s, RoleOf says %s", role, got)
		}
	}
	if got := RoleOf(&x509.Certificate{Subject: pkix.Name{CommonName: "old"}}); got != RoleCore {
		t.Errorf("a certificate without a role: %s, want core", got)
	}
	if got := RoleOf(&x509.Certificate{Subject: pkix.Name{OrganizationalUnit: []string{"admin"}}}); got != "" {
		t.Errorf("an unknown role counts as %s", got)
	}
	if _, _, err := ca.IssueRole("admin", "n", nil); err == nil {
		t.Error("issued a certificate for an unknown role")
	}
	b, err := ca.NewBundleRole(RoleEdge, "e", nil)
	if err != nil || b.NodeName != "e" {
		t.Fatalf("edge bundle: %v %v", b, err)
	}
}
