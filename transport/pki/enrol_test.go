package pki

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"testing"
	"time"
)

func TestEdgeEnrolment(t *testing.T) {
	ca, err := NewCA("cluster")
	if err != nil {
		t.Fatal(err)
	}
	token, err := ca.NewEdgeToken(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseEdgeToken(token)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEnrolment(tok, "edge-paris-1")
	if err != nil {
		t.Fatal(err)
	}
	answer, err := ca.Enrol(e.Request, time.Now())
	if err != nil {
		t.Fatalf("a valid enrolment was refused: %v", err)
	}
	caPEM, certPEM, keyPEM, err := e.Finish(answer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newBundle(caPEM, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(b.Certificate.Certificate[0])
	if RoleOf(leaf) != RoleEdge || leaf.Subject.CommonName != "edge-paris-1" {
		t.Fatalf("enrolled certificate: role %q name %q, want an edge certificate for edge-paris-1", RoleOf(leaf), leaf.Subject.CommonName)
	}
	dir := t.TempDir()
	if err := WriteEnrolled(dir, caPEM, certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateRole(dir, RoleEdge, "ignored", nil); err != nil {
		t.Fatalf("the enrolled directory does not load: %v", err)
	}
	if ok, _ := exists(dir + "/" + CAKeyFile); ok {
		t.Fatal("enrolment left a CA key on the edge")
	}
	if err := WriteEnrolled(dir, caPEM, certPEM, keyPEM); err == nil {
		t.Fatal("enrolment replaced existing credentials")
	}

	refused := func(what string, body []byte, now time.Time) {
		t.Helper()
		if _, err := ca.Enrol(body, now); !errors.Is(err, ErrEnrol) {
			t.Errorf("%s: %v, want ErrEnrol", what, err)
		}
	}
	refused("expired token", e.Request, tok.Expires.Add(time.Second))
	other, _ := NewCA("another cluster")
	otherToken, _ := other.NewEdgeToken(time.Hour)
	otherTok, _ := ParseEdgeToken(otherToken)
	oe, _ := NewEnrolment(otherTok, "edge-x")
	refused("another cluster's token", oe.Request, time.Now())
	// An eavesdropper replays the token id and proof with its own request.
	mine, _ := NewEnrolment(otherTok, "evil")
	var req, stolen enrolRequest
	_ = json.Unmarshal(e.Request, &stolen)
	_ = json.Unmarshal(mine.Request, &req)
	req.Token, req.Proof = stolen.Token, stolen.Proof
	forged, _ := json.Marshal(req)
	refused("a stolen proof over another request", forged, time.Now())
	refused("garbage", []byte("{\"token\":\"AAAA\"}"), time.Now())
	refused("oversized", make([]byte, maxEnrolReq+1), time.Now())

	// A man in the middle answers with its own CA.
	e2, _ := NewEnrolment(tok, "edge-2")
	mitm, _ := other.issue(RoleEdge, "edge-2", nil, &e2.key.PublicKey)
	fake, _ := json.Marshal(enrolAnswer{Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: mitm})), CA: string(other.CertPEM)})
	if _, _, _, err := e2.Finish(fake); err == nil {
		t.Error("the edge accepted a CA other than the one its token names")
	}
	// A core answering a core certificate would hand the edge more rights.
	coreDER, _ := ca.issue(RoleCore, "edge-2", nil, &e2.key.PublicKey)
	core, _ := json.Marshal(enrolAnswer{Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: coreDER})), CA: string(ca.CertPEM)})
	if _, _, _, err := e2.Finish(core); err == nil {
		t.Error("the edge accepted a core certificate")
	}

	if _, err := ParseEdgeToken("brainy-edge-1.short"); err == nil {
		t.Error("a damaged token parsed")
	}
	if _, err := NewEnrolment(tok, "bad name/../"); err == nil {
		t.Error("an edge name with a slash was accepted")
	}
}

// FuzzEnrol: whatever an unauthenticated client posts to /v1/enrol is
// refused with ErrEnrol, never a panic or a certificate.
func FuzzEnrol(f *testing.F) {
	ca, err := NewCA("cluster")
	if err != nil {
		f.Fatal(err)
	}
	other, _ := NewCA("other")
	token, _ := other.NewEdgeToken(time.Hour)
	tok, _ := ParseEdgeToken(token)
	e, _ := NewEnrolment(tok, "edge")
	f.Add(e.Request)
	f.Add([]byte(`{"token":"","csr":"","proof":""}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if out, err := ca.Enrol(body, time.Now()); err == nil {
			t.Fatalf("a request without a token of this CA enrolled: %s", out)
		}
	})
}
