// Package pki creates and loads the certificates that Brainy nodes use to
// authenticate each other over mutual TLS.
//
// A cluster has one certificate authority (CA). Every node holds a
// certificate signed by it and trusts only certificates signed by it, so a
// connection from anything without the cluster's credentials is refused
// during the TLS handshake.
//
// On the first start of the first node, [LoadOrCreate] creates the CA and the
// node's certificate in the node's data directory. To add a node, copy ca.crt
// and ca.key from an existing node into the new node's directory before its
// first start; LoadOrCreate then issues the new node's certificate from that
// CA. Operators with their own PKI pass files to [Load] instead.
//
// Keys are ECDSA P-256, stored as PKCS #8 PEM with mode 0600. Functions in
// this package are safe for concurrent use, but two processes must not call
// LoadOrCreate on the same directory at the same time.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// File names inside the directory given to LoadOrCreate.
const (
	CACertFile   = "ca.crt"
	CAKeyFile    = "ca.key"
	NodeCertFile = "node.crt"
	NodeKeyFile  = "node.key"
)

// ServerName is a DNS name put into every node certificate this package
// issues. Clients verify it instead of the dialled host, so a node is
// reachable under any address while still proving cluster membership.
const ServerName = "node.brainy.cluster"

// Validity of issued certificates.
const (
	// CAValidity is how long a created CA is valid.
	CAValidity = 20 * 365 * 24 * time.Hour
	// NodeValidity is how long an issued node certificate is valid.
	NodeValidity = 10 * 365 * 24 * time.Hour
)

// Role is what a certificate's holder may do in the cluster, written into
// the certificate (its subject's organizational unit) by the CA that
// issued it, so that a handler can check its verified caller.
type Role string

// Roles.
const (
	// RoleCore is a core node: every method, raft and snapshots included.
	RoleCore Role = "core"
	// RoleEdge is an edge: item requests and change subscriptions only.
	RoleEdge Role = "edge"
)

// RoleOf returns the role cert was issued for, or "" (no rights) for a
// role this package does not issue. Certificates issued before roles
// existed carry none and count as RoleCore: they were all nodes', or
// edges' holding the CA key, which could issue themselves any role anyway.
func RoleOf(cert *x509.Certificate) Role {
	ous := cert.Subject.OrganizationalUnit
	if len(ous) == 0 {
		return RoleCore
	}
	if r := Role(ous[0]); len(ous) == 1 && (r == RoleCore || r == RoleEdge) {
		return r
	}
	return ""
}

// ErrInvalid reports unusable certificate or key material.
var ErrInvalid = errors.New("pki: invalid certificate or key")

// CA is a cluster certificate authority that can issue node certificates.
type CA struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// Key signs node certificates.
	Key *ecdsa.PrivateKey
	// CertPEM and KeyPEM are the PEM encodings of Cert and Key.
	CertPEM, KeyPEM []byte
}

// Bundle is what a node needs to take part in mutual TLS: the cluster CA to
// trust and its own certificate.
type Bundle struct {
	// NodeName is the common name in the node certificate; peers see it as
	// the node's identity.
	NodeName string
	// CAs holds the cluster CA certificates that peers must chain to.
	CAs *x509.CertPool
	// Certificate is the node's certificate and private key.
	Certificate tls.Certificate
}

// NewCA creates a new self-signed cluster CA named commonName.
func NewCA(commonName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Brainy cluster"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	return caFromDER(der, key)
}

func caFromDER(der []byte, key *ecdsa.PrivateKey) (*CA, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal CA key: %w", err)
	}
	return &CA{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// Issue creates a node certificate for nodeName, valid for both the server
// and the client side of TLS. hosts are extra IP addresses or DNS names put
// into the certificate besides [ServerName]. It returns the PEM encodings of
// the certificate and its private key.
func (ca *CA) Issue(nodeName string, hosts []string) (certPEM, keyPEM []byte, err error) {
	return ca.IssueRole(RoleCore, nodeName, hosts)
}

// IssueRole is Issue for a holder of the given role.
func (ca *CA) IssueRole(role Role, nodeName string, hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate node key: %w", err)
	}
	der, err := ca.issue(role, nodeName, hosts, &key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: marshal node key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// issue signs a certificate for pub, held by nodeName in role.
func (ca *CA) issue(role Role, nodeName string, hosts []string, pub *ecdsa.PublicKey) ([]byte, error) {
	if role != RoleCore && role != RoleEdge {
		return nil, fmt.Errorf("pki: issue: unknown role %q: %w", role, ErrInvalid)
	}
	if nodeName == "" {
		return nil, fmt.Errorf("pki: issue: empty node name: %w", ErrInvalid)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: nodeName, Organization: []string{"Brainy cluster"}, OrganizationalUnit: []string{string(role)}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(NodeValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{ServerName},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: create node certificate: %w", err)
	}
	return der, nil
}

// NewBundle issues a certificate for nodeName from ca and returns the
// bundle, without touching the disk. Tests use it.
func (ca *CA) NewBundle(nodeName string, hosts []string) (*Bundle, error) {
	return ca.NewBundleRole(RoleCore, nodeName, hosts)
}

// NewBundleRole is NewBundle for a holder of the given role.
func (ca *CA) NewBundleRole(role Role, nodeName string, hosts []string) (*Bundle, error) {
	certPEM, keyPEM, err := ca.IssueRole(role, nodeName, hosts)
	if err != nil {
		return nil, err
	}
	return newBundle(ca.CertPEM, certPEM, keyPEM)
}

// LoadOrCreate returns the node's bundle from dir, creating what is missing:
// the cluster CA (ca.crt, ca.key) when dir has no ca.crt, and the node
// certificate (node.crt, node.key) for nodeName and hosts when dir has no
// node.crt. dir is created with mode 0700 and keys are written with mode 0600.
// An existing node certificate is used as it is, even if nodeName or hosts
// differ.
func LoadOrCreate(dir, nodeName string, hosts []string) (*Bundle, error) {
	return LoadOrCreateRole(dir, RoleCore, nodeName, hosts)
}

// LoadOrCreateRole is LoadOrCreate for a holder of the given role (the
// role of a certificate it creates; an existing one keeps its own).
func LoadOrCreateRole(dir string, role Role, nodeName string, hosts []string) (*Bundle, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: create %s: %w", dir, err)
	}
	caCertPath, caKeyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	nodeCertPath, nodeKeyPath := filepath.Join(dir, NodeCertFile), filepath.Join(dir, NodeKeyFile)

	nodeExists, err := exists(nodeCertPath)
	if err != nil {
		return nil, err
	}
	if nodeExists {
		return Load(caCertPath, nodeCertPath, nodeKeyPath)
	}
	caExists, err := exists(caCertPath)
	if err != nil {
		return nil, err
	}
	var ca *CA
	if caExists {
		if ca, err = LoadCA(caCertPath, caKeyPath); err != nil {
			return nil, err
		}
	} else {
		if ca, err = NewCA("brainy cluster CA"); err != nil {
			return nil, err
		}
		// The key first: a ca.crt without its key would stop later nodes
		// from being issued certificates.
		if err := writeFile(caKeyPath, ca.KeyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := writeFile(caCertPath, ca.CertPEM, 0o644); err != nil {
			return nil, err
		}
	}
	certPEM, keyPEM, err := ca.IssueRole(role, nodeName, hosts)
	if err != nil {
		return nil, err
	}
	if err := writeFile(nodeKeyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(nodeCertPath, certPEM, 0o644); err != nil {
		return nil, err
	}
	return newBundle(ca.CertPEM, certPEM, keyPEM)
}

// LoadCA reads a CA certificate and its private key from PEM files.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key pair: %w: %w", ErrInvalid, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: CA key is not ECDSA: %w", ErrInvalid)
	}
	ca, err := caFromDER(pair.Certificate[0], key)
	if err != nil {
		return nil, err
	}
	if !ca.Cert.IsCA {
		return nil, fmt.Errorf("pki: %s is not a CA certificate: %w", certFile, ErrInvalid)
	}
	return ca, nil
}

// Load reads a bundle from PEM files: the cluster CA certificate(s), the
// node certificate (optionally followed by intermediates) and the node key.
func Load(caFile, certFile, keyFile string) (*Bundle, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("pki: read CA certificate: %w", err)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("pki: read node certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: read node key: %w", err)
	}
	return newBundle(caPEM, certPEM, keyPEM)
}

func newBundle(caPEM, certPEM, keyPEM []byte) (*Bundle, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("pki: no CA certificate found: %w", ErrInvalid)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: node key pair: %w: %w", ErrInvalid, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("pki: parse node certificate: %w: %w", ErrInvalid, err)
		}
		pair.Leaf = leaf
	}
	return &Bundle{NodeName: leaf.Subject.CommonName, CAs: pool, Certificate: pair}, nil
}

// TLSConfig returns a TLS 1.3 configuration for both sides of a node's
// connections: as a server it requires and verifies a client certificate
// from the cluster CA; as a client it verifies the server's certificate
// against the cluster CA and the name [ServerName]. The transport package
// adds its ALPN protocol.
func (b *Bundle) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{b.Certificate},
		RootCAs:      b.CAs,
		ClientCAs:    b.CAs,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ServerName:   ServerName,
	}
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("pki: serial number: %w", err)
	}
	return n, nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("pki: %w", err)
}

// writeFile writes data to a temporary file, syncs it and renames it into
// place, so a crash never leaves a half-written key.
func writeFile(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(name)
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("pki: sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	ok = true
	return nil
}

// Stretching. Everything a cluster secret protects — the CA key, the gossip
// key — is derived from StretchSecret's output, never from the secret
// itself: anyone holding a certificate signed by the derived CA (every TLS
// client gets to see one) or a recorded gossip packet can test guesses at
// the secret offline, and argon2id makes each guess cost 19 MiB of memory
// and tens of milliseconds, where a plain hash costs nanoseconds.
// The salt is fixed (every node must derive the same key with nothing
// shared but the secret), so it only separates Brainy's derivation from
// other uses of the same secret.
const (
	stretchTime    = 2
	stretchMemory  = 19 * 1024 // KiB: OWASP's minimum for argon2id
	stretchThreads = 1
	stretchSalt    = "brainy cluster secret v2"
	// MinSecretBytes is the shortest cluster secret accepted.
	MinSecretBytes = 16
	// minSecretVariety is the fewest distinct bytes a secret may have:
	// "aaaaaaaaaaaaaaaa" is 16 bytes but no secret.
	minSecretVariety = 8
)

// stretched memoizes StretchSecret within the process: tests and an edge
// beside a core derive the same secret many times.
var stretched sync.Map // [sha256.Size]byte of the secret → []byte

// StretchSecret returns the 32-byte root key a cluster secret stands for
// (argon2id, see above), or an error saying how to make a good secret when
// secret is too short or too uniform to be one.
func StretchSecret(secret []byte) ([]byte, error) {
	distinct := map[byte]bool{}
	for _, b := range secret {
		distinct[b] = true
	}
	if len(secret) < MinSecretBytes || len(distinct) < minSecretVariety {
		return nil, fmt.Errorf("pki: a cluster secret needs at least %d bytes and %d different characters, got %d and %d; make one with `openssl rand -base64 32`: %w",
			MinSecretBytes, minSecretVariety, len(secret), len(distinct), ErrInvalid)
	}
	id := sha256.Sum256(secret)
	if v, ok := stretched.Load(id); ok {
		return v.([]byte), nil
	}
	root := argon2.IDKey(secret, []byte(stretchSalt), stretchTime, stretchMemory, stretchThreads, 32)
	stretched.Store(id, root)
	return root, nil
}

// DeriveCA returns the cluster CA derived from a shared secret: every node
// given the same secret derives the same CA key (and so trusts the others'
// certificates) without any file being copied between them. The secret is
// the cluster's root of trust: anyone who has it can join; choose at least
// 32 random bytes.
//
// The key is a P-256 scalar taken from HKDF-SHA256 of the stretched
// secret (StretchSecret). The CA
// certificate's fields are fixed, so that, although each node signs its
// own copy (ECDSA signatures are randomised), all copies name the same
// subject and key, which is all chain verification looks at.
func DeriveCA(secret []byte) (*CA, error) {
	root, err := StretchSecret(secret)
	if err != nil {
		return nil, err
	}
	key, err := caKey(root)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "brainy cluster CA (derived)", Organization: []string{"Brainy cluster"}},
		NotBefore:             time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	return caFromDER(der, key)
}

// caKey derives the CA's P-256 key from root.
func caKey(root []byte) (*ecdsa.PrivateKey, error) {
	n := elliptic.P256().Params().N
	for counter := byte(0); ; counter++ {
		raw, err := hkdf.Key(sha256.New, root, []byte{counter}, "brainy cluster CA key", 32)
		if err != nil {
			return nil, err
		}
		d := new(big.Int).SetBytes(raw)
		if d.Sign() == 0 || d.Cmp(n) >= 0 {
			continue // out of range: try the next counter (probability ~2^-32)
		}
		key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
		if err != nil {
			return nil, fmt.Errorf("pki: derive CA key: %w", err)
		}
		return key, nil
	}
}

// formerLoopbackSecret is the built-in string older versions derived the
// cluster CA of loopback nodes from (unstretched), and wrote into their
// storage's tls directory. It is kept only to recognise that CA and refuse
// it: anyone can derive its key.
const formerLoopbackSecret = "brainy loopback cluster: for nodes on one host only"

// RefuseWellKnownCA returns an error when dir holds a CA whose key anyone
// can derive (the one older versions made from a built-in value), so that
// no node or edge ever trusts it.
func RefuseWellKnownCA(dir string) error {
	pemBytes, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil // not a certificate: loading it reports that
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil
	}
	known, err := caKey([]byte(formerLoopbackSecret))
	if err != nil {
		return err
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); ok && pub.Equal(&known.PublicKey) {
		return fmt.Errorf("pki: %s holds the cluster CA older versions derived from a built-in value, whose key anyone can derive; move %s away and pass --cluster-secret (or new CA files): %w",
			dir, dir, ErrInvalid)
	}
	return nil
}
