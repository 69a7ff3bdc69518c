package server

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/soullabs/brainy/internal/daemon"
	"github.com/soullabs/brainy/tiers/backend"
	"github.com/soullabs/brainy/transport/pki"
)

// credentials returns the node's mutual-TLS configuration: from
// ClusterSecret, from explicit files, from the per-host secret when every
// listener is on loopback (daemon.HostSecret), or from TLSDir (by default
// the storage directory's tls/).
//
// It also returns the cluster CA when this node holds its key (nil with
// explicit files), which signs enrolled edges' certificates, and the
// cluster's root secret, which the gossip key is derived from when none is
// given (gossipKey): the stretched cluster or per-host secret, or the CA
// key in TLSDir.
func (s *Server) credentials(spec backend.Spec) (*tls.Config, *pki.CA, []byte, error) {
	cfg := s.cfg
	src, err := caSourceOf(cfg, spec, s.log)
	if err != nil {
		return nil, nil, nil, err
	}
	host, _, _ := net.SplitHostPort(cfg.QUICAddr)
	tc, err := daemon.ClusterTLS(daemon.TLSFiles{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA, Secret: src.secret}, pki.RoleCore, src.dir, s.nodeID, []string{host})
	if err != nil {
		return nil, nil, nil, err
	}
	// Peers take raft messages only from the node a certificate names
	// (cluster.handleRaft): a certificate for another name would cut this
	// node off from every partition, silently.
	if name := certName(tc); name != s.nodeID {
		return nil, nil, nil, fmt.Errorf("the node certificate names %q but the node id is %q: peers accept raft messages only from the node its certificate names; pass --node-id %q, or issue the certificate for %q",
			name, s.nodeID, name, s.nodeID)
	}
	ca, err := src.ca()
	if err != nil || ca == nil {
		return tc, nil, nil, err
	}
	var root []byte
	if len(src.secret) > 0 {
		// The stretched secret, never the secret: a recorded gossip
		// packet must not let anyone test guesses at it cheaply.
		root, err = pki.StretchSecret(src.secret)
	} else {
		root, err = ca.Key.Bytes()
	}
	return tc, ca, root, err
}

// caSource is where a node's cluster CA comes from: a secret it is derived
// from, or a directory holding it (or where one is created on first start
// on loopback), or neither (explicit files).
type caSource struct {
	secret []byte
	dir    string
	files  bool
}

// caSourceOf settles cfg's CA source; see credentials.
func caSourceOf(cfg Config, spec backend.Spec, log *slog.Logger) (caSource, error) {
	src := caSource{secret: []byte(cfg.ClusterSecret), dir: cfg.TLSDir, files: cfg.TLSCert != ""}
	if src.dir == "" && spec.Kind == "disk" {
		src.dir = filepath.Join(spec.Path, "tls")
	}
	if src.dir == "" && spec.Kind == "tiered" {
		src.dir = filepath.Join(spec.Hot.Path, "tls")
	}
	loopback := daemon.IsLoopback(cfg.QUICAddr) && daemon.IsLoopback(cfg.GossipAddr)
	switch {
	case len(src.secret) > 0 || src.files:
	case loopback:
		// Nodes on loopback share this user's per-host secret, so that a
		// second node on 127.0.0.2, or an edge, joins with nothing to copy.
		hs, path, err := daemon.HostSecret()
		if err != nil {
			return src, err
		}
		log.Info("cluster CA derived from the per-host secret", "component", "main", "file", path)
		src.secret, src.dir = hs, ""
	case !hasCA(src.dir):
		// A CA made up here would be one no other node trusts, and a
		// fallback to anything built in would be a CA anyone can derive.
		where := "the directory --tls-dir names"
		if src.dir != "" {
			where = src.dir
		}
		return src, fmt.Errorf("no cluster credentials for a node off loopback: pass --cluster-secret (the same on every node; make one with `openssl rand -base64 32`), or --tls-cert, --tls-key and --tls-ca, or put the cluster's ca.crt and ca.key in %s", where)
	}
	return src, nil
}

// ca returns the CA src names, or nil when this node does not hold its key.
func (src caSource) ca() (*pki.CA, error) {
	switch {
	case len(src.secret) > 0:
		return pki.DeriveCA(src.secret)
	case src.files || src.dir == "":
		return nil, nil
	}
	return pki.LoadCA(filepath.Join(src.dir, pki.CACertFile), filepath.Join(src.dir, pki.CAKeyFile))
}

// EdgeToken returns a token that enrols edges (brainy-edge --join-token)
// for ttl, made with the CA of the node cfg configures: run where that
// node runs, with the same settings (`brainy-core edge-token`). It opens
// nothing but the CA.
func EdgeToken(cfg Config, ttl time.Duration) (string, error) {
	cfg.EnsureDefaults()
	spec, err := cfg.storageSpec()
	if err != nil {
		return "", err
	}
	src, err := caSourceOf(cfg, spec, slog.New(slog.DiscardHandler))
	if err != nil {
		return "", err
	}
	ca, err := src.ca()
	if err != nil {
		return "", fmt.Errorf("cluster CA: %w", err)
	}
	if ca == nil {
		return "", errors.New("this node holds no CA key (--tls-cert, --tls-key and --tls-ca): issue edge certificates where the CA key is")
	}
	return ca.NewEdgeToken(ttl)
}

// hasCA reports whether dir holds a cluster CA certificate.
func hasCA(dir string) bool {
	if dir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, pki.CACertFile))
	return err == nil
}

// gossipKey is the key gossip is encrypted and authenticated with: the
// configured one, else one derived from the cluster's root secret, so that
// every node holding the cluster's credentials gossips with the same key
// and nobody else can join the gossip, let alone be placed. Gossip in the
// clear is allowed on loopback only: off it, anyone who reaches the port
// could announce members and make every node dial the addresses they name.
func gossipKey(configured, root []byte, gossipAddr string) ([]byte, error) {
	switch {
	case len(configured) > 0:
		return configured, nil
	case len(root) > 0:
		return hkdf.Key(sha256.New, root, nil, "brainy gossip key", 32)
	case daemon.IsLoopback(gossipAddr):
		return nil, nil
	}
	return nil, fmt.Errorf("gossip on %s would be unauthenticated: pass --gossip-key (base64 of `openssl rand 32`, the same on every node) or --cluster-secret, or keep the CA in --tls-dir", gossipAddr)
}

// certName returns the common name of tc's own certificate.
func certName(tc *tls.Config) string {
	if len(tc.Certificates) == 0 || len(tc.Certificates[0].Certificate) == 0 {
		return ""
	}
	leaf := tc.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(tc.Certificates[0].Certificate[0]); err != nil {
			return ""
		}
	}
	return leaf.Subject.CommonName
}
