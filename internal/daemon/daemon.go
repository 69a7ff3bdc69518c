// Package daemon holds what a core node (package server) and an edge
// (package edge) share around the packages they assemble: the logger from
// settings, address checks, TLS credentials, and serving HTTP until the
// context ends, with a graceful shutdown.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/soullabs/brainy/internal/cliconfig"
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

// CheckExposure refuses a non-loopback HTTP address without API keys,
// unless insecure: the HTTP API binds loopback unless told otherwise, and
// needs API keys when it does not.
func CheckExposure(httpAddr string, haveKeys, insecure bool) error {
	if !IsLoopback(httpAddr) && !haveKeys && !insecure {
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

// ClusterTLS returns the mutual-TLS configuration of a holder of role: from explicit
// files when given; else from dir, creating the cluster CA and the node's
// certificate there on first use; else (dir empty) from a CA made for
// this process only, which no other node can join.
//
// A cluster secret takes precedence over dir: the CA is derived from it
// (pki.DeriveCA) and the node's certificate issued in memory at each start;
// nothing is written, so no file on disk holds the CA key, and a later
// start without the secret cannot fall back on it.
func ClusterTLS(files TLSFiles, role pki.Role, dir, nodeName string, hosts []string) (*tls.Config, error) {
	switch {
	case len(files.Secret) > 0:
		ca, err := pki.DeriveCA(files.Secret)
		if err != nil {
			return nil, fmt.Errorf("--cluster-secret: %w", err)
		}
		b, err := ca.NewBundleRole(role, nodeName, hosts)
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
		if err := pki.RefuseWellKnownCA(dir); err != nil {
			return nil, err
		}
		b, err := pki.LoadOrCreateRole(dir, role, nodeName, hosts)
		if err != nil {
			return nil, err
		}
		return b.TLSConfig(), nil
	}
	ca, err := pki.NewCA("brainy ephemeral cluster")
	if err != nil {
		return nil, err
	}
	b, err := ca.NewBundleRole(role, nodeName, hosts)
	if err != nil {
		return nil, err
	}
	return b.TLSConfig(), nil
}

// HTTPServer is what Run serves and stops.
type HTTPServer interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}

// ServeUntil serves srv on ln until ctx ends (in the binaries: SIGINT or
// SIGTERM) or serving fails, then shuts it down gracefully within timeout.
func ServeUntil(ctx context.Context, ln net.Listener, srv HTTPServer, timeout time.Duration, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "component", "main")
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown did not finish in-flight requests", "component", "main", "err", err)
	}
	return nil
}

// Command is what a binary's main hands Main: its flag set (already
// holding its settings), where to find the log settings among them, and
// what to run once they are parsed.
type Command struct {
	// Name is the binary's name, for messages.
	Name string
	// EnvPrefix is the prefix of its environment variables (BRAINY_).
	EnvPrefix string
	// Synopsis heads --help.
	Synopsis string
	// Flags holds every setting; "config" names the YAML file.
	Flags *flag.FlagSet
	// LogLevel and LogFormat point at the flags' values.
	LogLevel, LogFormat *string
	// Run runs the command until ctx ends (SIGINT or SIGTERM).
	Run func(ctx context.Context, log *slog.Logger, sources map[string]cliconfig.Source) error
}

// Main parses args into the command's settings (flags over environment
// over config file over defaults), then runs it with a context that ends
// on SIGINT or SIGTERM. It returns the process's exit code: 0, 1 when the
// command failed, 2 for bad settings.
func Main(c Command, args []string, stderr io.Writer) int {
	c.Flags.SetOutput(stderr)
	c.Flags.Usage = func() { cliconfig.Usage(stderr, c.Flags, c.EnvPrefix, c.Synopsis) }
	sources, err := cliconfig.Parse(c.Flags, args, c.EnvPrefix, "config", nil)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		return 2
	}
	log, err := NewLogger(stderr, *c.LogLevel, *c.LogFormat)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", c.Name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.Run(ctx, log, sources); err != nil {
		log.Error(c.Name+" stopped", "err", err)
		return 1
	}
	return 0
}

// SetBy lists the settings that did not come from defaults, with their
// source, for the start-up log line.
func SetBy(sources map[string]cliconfig.Source) string {
	var parts []string
	for name, src := range sources {
		if src != cliconfig.FromDefault {
			parts = append(parts, name+"="+string(src))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
