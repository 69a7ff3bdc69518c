// Package daemon holds what brainy-core and brainy-edge share around their
// packages: the logger from flags, address checks, API key files, TLS
// credentials, and serving HTTP until a signal with a graceful shutdown.
package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/soullabs/brainy/edge"
	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/transport/pki"
)

// NewLogger returns a slog logger for the --log-level and --log-format flags.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// IsLoopback reports whether host:port names a loopback address.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoadAPIKeys reads an --api-keys file; an empty path means no keys.
func LoadAPIKeys(path string, lim *item.Limits) (*edge.APIKeys, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--api-keys: %w", err)
	}
	defer f.Close()
	keys, err := edge.ParseAPIKeys(f, lim)
	if err != nil {
		return nil, fmt.Errorf("--api-keys %s: %w", path, err)
	}
	return keys, nil
}

// CheckExposure refuses a non-loopback HTTP address without API keys,
// unless insecure.
func CheckExposure(httpAddr string, keys *edge.APIKeys, insecure bool) error {
	if !IsLoopback(httpAddr) && keys.Len() == 0 && !insecure {
		return fmt.Errorf("refusing to serve on %s without API keys: pass --api-keys FILE, or --insecure to serve unauthenticated", httpAddr)
	}
	return nil
}

// TLSFiles names explicit credentials (--tls-cert, --tls-key, --tls-ca),
// or the shared secret the cluster CA is derived from (--cluster-secret).
type TLSFiles struct {
	Cert, Key, CA string
	Secret        []byte
}

// ClusterTLS returns the node's mutual-TLS configuration: from explicit
// files when given; else from dir, creating the cluster CA and the node's
// certificate there on first use; else (dir empty) from a CA made for
// this process only, which no other node can join.
//
// A cluster secret takes precedence over dir: the CA is derived from it
// (pki.DeriveCA) and the node's certificate issued in memory at each start.
func ClusterTLS(files TLSFiles, dir, nodeName string, hosts []string) (*tls.Config, error) {
	switch {
	case len(files.Secret) > 0:
		ca, err := pki.DeriveCA(files.Secret)
		if err != nil {
			return nil, fmt.Errorf("--cluster-secret: %w", err)
		}
		if dir != "" {
			// Edges trust the CA found in a core's tls directory: put the
			// derived one there.
			if err := pki.WriteCA(dir, ca); err != nil {
				return nil, err
			}
		}
		b, err := ca.NewBundle(nodeName, hosts)
		if err != nil {
			return nil, err
		}
		return b.TLSConfig(), nil
	case files.Cert != "" || files.Key != "" || files.CA != "":
		if files.Cert == "" || files.Key == "" || files.CA == "" {
			return nil, fmt.Errorf("--tls-cert, --tls-key and --tls-ca go together")
		}
		b, err := pki.Load(files.CA, files.Cert, files.Key)
		if err != nil {
			return nil, err
		}
		return b.TLSConfig(), nil
	case dir != "":
		b, err := pki.LoadOrCreate(dir, nodeName, hosts)
		if err != nil {
			return nil, err
		}
		return b.TLSConfig(), nil
	}
	ca, err := pki.NewCA("brainy ephemeral cluster")
	if err != nil {
		return nil, err
	}
	b, err := ca.NewBundle(nodeName, hosts)
	if err != nil {
		return nil, err
	}
	return b.TLSConfig(), nil
}

// DefaultCacheBytes is an edge's default cache size: a quarter of the
// machine's RAM, at most 1 GiB (64 MiB when RAM cannot be read).
func DefaultCacheBytes() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 64 << 20
	}
	return min(int64(si.Totalram)*int64(si.Unit)/4, 1<<30)
}

// HTTPServer is what Run serves and stops.
type HTTPServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// Run serves srv on ln until SIGINT or SIGTERM (or a serve error), then
// shuts it down gracefully within timeout.
func Run(ln net.Listener, srv HTTPServer, timeout time.Duration, log *slog.Logger) error {
	sig, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-sig.Done():
	}
	log.Info("shutting down", "component", "main")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("shutdown did not finish in-flight requests", "component", "main", "err", err)
	}
	return nil
}
