package server

import (
	"crypto/tls"
	"net"
	"path/filepath"

	"github.com/soullabs/brainy/internal/daemon"
	"github.com/soullabs/brainy/tiers/backend"
)

// loopbackSecret is the cluster secret of nodes that listen on loopback
// only and were given none.
const loopbackSecret = "brainy loopback cluster: for nodes on one host only"

// credentials returns the node's mutual-TLS configuration: from
// ClusterSecret, from explicit files, or from TLSDir (by default the
// storage directory's tls/, where edges copy the CA from).
func (s *Server) credentials(spec backend.Spec) (*tls.Config, error) {
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
		// Every process on this host can reach loopback anyway: nodes on
		// loopback share a well-known secret, so that a second node on
		// 127.0.0.2 joins with no credentials to copy.
		secret = []byte(loopbackSecret)
	}
	host, _, _ := net.SplitHostPort(cfg.QUICAddr)
	return daemon.ClusterTLS(daemon.TLSFiles{Cert: cfg.TLSCert, Key: cfg.TLSKey, CA: cfg.TLSCA, Secret: secret}, dir, s.nodeID, []string{host})
}
