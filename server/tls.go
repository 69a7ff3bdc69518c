package server

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/soullabs/brainy/internal/daemon"
	"github.com/soullabs/brainy/tiers/backend"
	"github.com/soullabs/brainy/transport/pki"
)

// credentials returns the node's mutual-TLS configuration: from
// ClusterSecret, from explicit files, from the per-host secret when every
// listener is on loopback (daemon.HostSecret), or from TLSDir (by default
// the storage directory's tls/, where edges copy the CA from).
//
// It also returns the cluster's root secret, which the gossip key is
// derived from when none is given (gossipKey): the cluster secret, the
// per-host secret, or the CA key in TLSDir; nil with explicit files (no
// CA key here) or a CA made for this process only.
func (s *Server) credentials(spec backend.Spec) (*tls.Config, []byte, error) {
	cfg := s.cfg
	dir := cfg.TLSDir
	if dir == "" && spec.Kind == "disk" {
		dir = filepath.Join(spec.Path, "tls")
	}
	if dir == "" && spec.Kind == "tiered" {
		dir = filepath.Join(spec.Hot.Path, "tls")
	}
	secret := []byte(cfg.ClusterSecret)
	if len(secret) == 0 && daemon.IsLoopback(cfg.QUICAddr) && daemon.IsLoopback(cfg.GossipAddr) && cfg.TLSCert == "" {
		// Nodes on loopback share this user's per-host secret, so that a
		// second node on 127.0.0.2, or an edge, joins with nothing to copy.
		hs, path, err := daemon.HostSecret()
		if err != nil {
			return nil, nil, err
		}
		s.log.Info("cluster CA derived from the per-host secret", "component", "main", "file", path)
		// Nothing to write for edges to copy: an edge on this host derives
		// the same CA, and none elsewhere may.
		secret, dir = hs, ""
	}
	loopback := daemon.IsLoopback(cfg.QUICAddr) && daemon.IsLoopback(cfg.GossipAddr)
	if len(secret) == 0 && cfg.TLSCert == "" && !loopback && !hasCA(dir) {
		// A CA made up here would be one no other node trusts, and a
		// fallback to anything built in would be a CA anyone can derive.
		where := "the directory --tls-dir names"
		if dir != "" {
			where = dir
		}
		return nil, nil, fmt.Errorf("no cluster credentials for a node off loopback: pass --cluster-secret (the same on every node; make one with `openssl rand -base64 32`), or --tls-cert, --tls-key and --tls-ca, or put the cluster's ca.crt and ca.key in %s", where)
	}
	host, _, _ := net.SplitHostPort(cfg.QUICAddr)
	tc, err := daemon.ClusterTLS(daemon.TLSFiles{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA, Secret: secret}, pki.RoleCore, dir, s.nodeID, []string{host})
	if err != nil {
		return nil, nil, err
	}
	// Peers take raft messages only from the node a certificate names
	// (cluster.handleRaft): a certificate for another name would cut this
	// node off from every partition, silently.
	if name := certName(tc); name != s.nodeID {
		return nil, nil, fmt.Errorf("the node certificate names %q but the node id is %q: peers accept raft messages only from the node its certificate names; pass --node-id %q, or issue the certificate for %q",
			name, s.nodeID, name, s.nodeID)
	}
	var root []byte
	if len(secret) > 0 {
		// The stretched secret, never the secret: a recorded gossip
		// packet must not let anyone test guesses at it cheaply.
		if root, err = pki.StretchSecret(secret); err != nil {
			return nil, nil, err
		}
	} else if dir != "" && cfg.TLSCert == "" {
		ca, err := pki.LoadCA(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, pki.CAKeyFile))
		if err != nil {
			return nil, nil, err
		}
		if root, err = ca.Key.Bytes(); err != nil {
			return nil, nil, err
		}
	}
	return tc, root, nil
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
