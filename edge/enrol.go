package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/soullabs/brainy/transport/pki"
)

// enrolTimeout bounds the enrolment request to a core.
const enrolTimeout = 10 * time.Second

// enrolURL is where cfg's enrolment request goes: EnrolAddr, as a URL or
// host:port, or the first upstream's host on the cores' default HTTP port.
func enrolURL(cfg Config) string {
	addr := cfg.EnrolAddr
	if addr == "" {
		host, _, _ := net.SplitHostPort(cfg.Upstreams[0])
		addr = net.JoinHostPort(host, DefaultCoreHTTPPort)
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimSuffix(addr, "/") + "/v1/enrol"
}

// enrol gets the edge a certificate of its own with cfg.JoinToken, unless
// TLSDir already holds one: it makes a key, has a core sign its request,
// checks the answer against the token (pki.Enrolment.Finish) and keeps the
// certificate, its key and the CA certificate in TLSDir — never the CA key.
func enrol(ctx context.Context, cfg Config) error {
	if _, err := os.Stat(filepath.Join(cfg.TLSDir, pki.NodeCertFile)); err == nil {
		cfg.Logger.Info("already enrolled: --join-token not used", "component", "main", "tls_dir", cfg.TLSDir)
		return nil
	}
	tok, err := pki.ParseEdgeToken(cfg.JoinToken)
	if err != nil {
		return fmt.Errorf("--join-token: %w", err)
	}
	e, err := pki.NewEnrolment(tok, cfg.Name)
	if err != nil {
		return fmt.Errorf("--join-token: %w", err)
	}
	url := enrolURL(cfg)
	ctx, cancel := context.WithTimeout(ctx, enrolTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(e.Request))
	if err != nil {
		return fmt.Errorf("enrolment at %s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("enrolment at %s (set --enrol-addr to a core's HTTP address): %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("enrolment at %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("enrolment at %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	caPEM, certPEM, keyPEM, err := e.Finish(body)
	if err != nil {
		return fmt.Errorf("enrolment at %s: %w", url, err)
	}
	if err := pki.WriteEnrolled(cfg.TLSDir, caPEM, certPEM, keyPEM); err != nil {
		return err
	}
	cfg.Logger.Info("enrolled: edge certificate issued by the cluster", "component", "main", "name", cfg.Name, "tls_dir", cfg.TLSDir, "via", url)
	return nil
}

var errNoCredentials = errors.New("no cluster credentials")
