package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Edge enrolment: how an edge on another host gets an edge certificate
// without ever holding the CA key.
//
// An operator runs `brainy-core edge-token` where the CA key is (a core);
// it prints a token. The edge, given the token, makes its own key, sends a
// certificate request to a core's HTTP API (POST /v1/enrol) and gets back
// an edge certificate and the CA certificate. The token is
//
//	"brainy-edge-1." base64url(expires(8) nonce(16) secret(32) caHash(32))
//
// secret is HMAC-SHA256(enrolKey, expires‖nonce), where enrolKey is derived
// from the CA key: every core holding the CA can check a token without any
// state shared between cores, and nobody without the CA key can make one.
// The secret never crosses the wire: the request carries expires‖nonce, the
// certificate request, and HMAC(secret, request DER) as proof, so an
// eavesdropper on the (plain HTTP) enrolment learns nothing it can enrol
// with, and a replayed request only yields a certificate for a key the
// replayer does not have. caHash, the SHA-256 of the CA's public key, lets
// the edge check that the CA certificate it is handed is the cluster's and
// not a man-in-the-middle's. A token enrols any number of edges until it
// expires: keep its lifetime short.

// TokenPrefix starts every edge enrolment token.
const TokenPrefix = "brainy-edge-1."

// MaxTokenTTL bounds a token's lifetime.
const MaxTokenTTL = 365 * 24 * time.Hour

const (
	tokenIDLen  = 8 + 16
	tokenLen    = tokenIDLen + 32 + 32
	enrolLabel  = "brainy edge enrolment"
	maxEnrolReq = 16 << 10
)

// edgeName is what an enrolled edge may be called: it becomes the
// certificate's common name, seen in peers' logs.
var edgeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ErrEnrol reports a refused enrolment: a bad, expired or foreign token,
// or a malformed request.
var ErrEnrol = errors.New("pki: enrolment refused")

// Token is a parsed edge enrolment token.
type Token struct {
	id      [tokenIDLen]byte // expires ‖ nonce
	secret  [32]byte
	caHash  [32]byte
	Expires time.Time
}

// enrolKey is the key edge tokens are made and checked with.
func (ca *CA) enrolKey() ([]byte, error) {
	raw, err := ca.Key.Bytes()
	if err != nil {
		return nil, err
	}
	return hkdf.Key(sha256.New, raw, nil, enrolLabel, 32)
}

func caHash(cert *x509.Certificate) [32]byte { return sha256.Sum256(cert.RawSubjectPublicKeyInfo) }

func (ca *CA) tokenSecret(id []byte) ([]byte, error) {
	k, err := ca.enrolKey()
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, k)
	m.Write(id)
	return m.Sum(nil), nil
}

// NewEdgeToken returns a token that enrols edges until ttl has passed.
func (ca *CA) NewEdgeToken(ttl time.Duration) (string, error) {
	if ttl <= 0 || ttl > MaxTokenTTL {
		return "", fmt.Errorf("pki: token lifetime %v: want more than 0 and at most %v", ttl, MaxTokenTTL)
	}
	var b [tokenLen]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().Add(ttl).Unix()))
	if _, err := rand.Read(b[8:tokenIDLen]); err != nil {
		return "", err
	}
	secret, err := ca.tokenSecret(b[:tokenIDLen])
	if err != nil {
		return "", err
	}
	copy(b[tokenIDLen:], secret)
	h := caHash(ca.Cert)
	copy(b[tokenIDLen+32:], h[:])
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ParseEdgeToken parses a token made by NewEdgeToken.
func ParseEdgeToken(s string) (*Token, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), TokenPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: not an edge token (it starts with %q)", ErrEnrol, TokenPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(raw) != tokenLen {
		return nil, fmt.Errorf("%w: the edge token is damaged", ErrEnrol)
	}
	t := &Token{}
	copy(t.id[:], raw)
	copy(t.secret[:], raw[tokenIDLen:])
	copy(t.caHash[:], raw[tokenIDLen+32:])
	t.Expires = time.Unix(int64(binary.BigEndian.Uint64(raw[:8])), 0)
	return t, nil
}

// enrolRequest is the body of POST /v1/enrol.
type enrolRequest struct {
	Token []byte `json:"token"` // expires ‖ nonce: the token without its secret
	CSR   []byte `json:"csr"`   // DER certificate request
	Proof []byte `json:"proof"` // HMAC(token secret, CSR)
}

// enrolAnswer is its answer.
type enrolAnswer struct {
	Certificate string `json:"certificate"` // PEM
	CA          string `json:"ca"`          // PEM
}

// Enrolment is an edge's side of an enrolment in progress.
type Enrolment struct {
	tok *Token
	key *ecdsa.PrivateKey
	// Request is the body to POST to a core's /v1/enrol.
	Request []byte
}

// NewEnrolment makes the edge's key and the request asking for an edge
// certificate named name with tok.
func NewEnrolment(tok *Token, name string) (*Enrolment, error) {
	if !edgeName.MatchString(name) {
		return nil, fmt.Errorf("pki: edge name %q: want letters, digits, '.', '_' or '-', at most 64", name)
	}
	if time.Now().After(tok.Expires) {
		return nil, fmt.Errorf("%w: the edge token expired at %s; make a new one with `brainy-core edge-token`", ErrEnrol, tok.Expires.UTC().Format(time.RFC3339))
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, tok.secret[:])
	m.Write(csr)
	req, err := json.Marshal(enrolRequest{Token: tok.id[:], CSR: csr, Proof: m.Sum(nil)})
	if err != nil {
		return nil, err
	}
	return &Enrolment{tok: tok, key: key, Request: req}, nil
}

// Enrol answers an edge's enrolment request: when its token was made by
// this CA, has not expired, and its proof matches the certificate request,
// it issues an edge certificate for the request's key and name.
func (ca *CA) Enrol(body []byte, now time.Time) ([]byte, error) {
	if len(body) > maxEnrolReq {
		return nil, fmt.Errorf("%w: request of %d bytes, at most %d", ErrEnrol, len(body), maxEnrolReq)
	}
	var req enrolRequest
	if err := json.Unmarshal(body, &req); err != nil || len(req.Token) != tokenIDLen {
		return nil, fmt.Errorf("%w: not an enrolment request", ErrEnrol)
	}
	secret, err := ca.tokenSecret(req.Token)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, secret)
	m.Write(req.CSR)
	if !hmac.Equal(m.Sum(nil), req.Proof) {
		return nil, fmt.Errorf("%w: the token was not made by this cluster", ErrEnrol)
	}
	if expires := time.Unix(int64(binary.BigEndian.Uint64(req.Token[:8])), 0); now.After(expires) {
		return nil, fmt.Errorf("%w: the token expired at %s", ErrEnrol, expires.UTC().Format(time.RFC3339))
	}
	csr, err := x509.ParseCertificateRequest(req.CSR)
	if err != nil || csr.CheckSignature() != nil {
		return nil, fmt.Errorf("%w: the certificate request is not valid", ErrEnrol)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: the certificate request's key must be ECDSA P-256", ErrEnrol)
	}
	if !edgeName.MatchString(csr.Subject.CommonName) {
		return nil, fmt.Errorf("%w: edge name %q", ErrEnrol, csr.Subject.CommonName)
	}
	der, err := ca.issue(RoleEdge, csr.Subject.CommonName, nil, pub)
	if err != nil {
		return nil, err
	}
	return json.Marshal(enrolAnswer{Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), CA: string(ca.CertPEM)})
}

// Finish checks a core's answer — the CA is the one the token names, the
// certificate is an edge certificate for the enrolment's key, issued by
// that CA — and returns the PEM files to keep: CA certificate, edge
// certificate, edge key.
func (e *Enrolment) Finish(answer []byte) (caPEM, certPEM, keyPEM []byte, err error) {
	var a enrolAnswer
	if err := json.Unmarshal(answer, &a); err != nil {
		return nil, nil, nil, fmt.Errorf("pki: enrolment answer: %w", err)
	}
	caBlock, _ := pem.Decode([]byte(a.CA))
	certBlock, _ := pem.Decode([]byte(a.Certificate))
	if caBlock == nil || certBlock == nil {
		return nil, nil, nil, fmt.Errorf("pki: enrolment answer without certificates: %w", ErrInvalid)
	}
	caCert, err := x509.ParseCertificate(caBlock.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pki: enrolment answer: %w", err)
	}
	if caHash(caCert) != e.tok.caHash {
		return nil, nil, nil, fmt.Errorf("pki: the core answered with a CA that is not the one the token names (a man in the middle, or a token of another cluster): %w", ErrInvalid)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("pki: enrolment answer: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, nil, nil, fmt.Errorf("pki: the enrolled certificate does not chain to the cluster CA: %w", err)
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&e.key.PublicKey) || RoleOf(cert) != RoleEdge {
		return nil, nil, nil, fmt.Errorf("pki: the enrolled certificate is not an edge certificate for this edge's key: %w", ErrInvalid)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(e.key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(caBlock), pem.EncodeToMemory(certBlock),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// WriteEnrolled stores what Finish returned in dir as the CA certificate
// and this holder's certificate and key, where LoadOrCreateRole finds
// them. An existing certificate there is an error: enrolment never
// replaces credentials silently.
func WriteEnrolled(dir string, caPEM, certPEM, keyPEM []byte) error {
	if ok, err := exists(filepath.Join(dir, NodeCertFile)); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("pki: %s already holds a certificate; move it away to enrol again", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: create %s: %w", dir, err)
	}
	// The key first, the CA last: a directory holding a certificate
	// without its key, or a key without a CA, fails to load loudly.
	if err := writeFile(filepath.Join(dir, NodeKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, NodeCertFile), certPEM, 0o644); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, CACertFile), caPEM, 0o644)
}
