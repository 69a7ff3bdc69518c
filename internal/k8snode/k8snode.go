// Package k8snode reads a Kubernetes node's zone from the API server, as a
// pod sees it: the node object at /api/v1/nodes/NAME, fetched with the
// pod's service-account token and trusted through the service-account CA,
// and its topology.kubernetes.io/zone label (or the older
// failure-domain.beta.kubernetes.io/zone).
//
// It uses net/http alone, no client library, and never contacts anything
// but the configured API server: no proxy from the environment, no
// redirects followed, no system roots trusted.
//
// The pod's service account needs get on nodes (a ClusterRole: nodes are
// cluster-scoped); deploy/kubernetes/base grants exactly that.
package k8snode

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// The labels a node's zone is read from, in order.
const (
	ZoneLabel       = "topology.kubernetes.io/zone"
	LegacyZoneLabel = "failure-domain.beta.kubernetes.io/zone"
)

// Defaults of Config.
const (
	// TokenPath and CAPath are where Kubernetes mounts a pod's
	// service-account token and the API server's CA.
	TokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	CAPath    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
	// DefaultTimeout bounds the whole request.
	DefaultTimeout = 5 * time.Second
)

// MaxBodyBytes bounds how much of the API server's answer is read.
const MaxBodyBytes = 1 << 20

// Config says which node to read and how to reach the API server. Zero
// fields take the defaults given.
type Config struct {
	// Node is the node's name (required): in a pod, spec.nodeName.
	Node string
	// Host and Port are the API server's address. Defaults
	// $KUBERNETES_SERVICE_HOST and $KUBERNETES_SERVICE_PORT (443 when
	// that is unset), which Kubernetes sets in every container.
	Host, Port string
	// TokenFile and CAFile are the service-account token and the CA
	// certificate (PEM) the API server's certificate must chain to.
	// Defaults TokenPath and CAPath.
	TokenFile, CAFile string
	// Timeout bounds the request. Default DefaultTimeout.
	Timeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Host == "" {
		c.Host = os.Getenv("KUBERNETES_SERVICE_HOST")
	}
	if c.Port == "" {
		c.Port = os.Getenv("KUBERNETES_SERVICE_PORT")
	}
	if c.Port == "" {
		c.Port = "443"
	}
	if c.TokenFile == "" {
		c.TokenFile = TokenPath
	}
	if c.CAFile == "" {
		c.CAFile = CAPath
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// nodeName is a DNS subdomain (RFC 1123), which the API requires of
// node names.
var nodeName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// CheckNode reports whether name can be a node's name, without asking
// anyone; an unexpanded $(VAR) gets its own message.
func CheckNode(name string) error {
	switch {
	case name == "":
		return errors.New("no node name")
	case strings.Contains(name, "$("):
		return fmt.Errorf("node name %q holds an unexpanded variable: in a pod spec, define it (fieldRef spec.nodeName) before the variable that uses it", name)
	case len(name) > 253 || !nodeName.MatchString(name):
		return fmt.Errorf("node name %q: want a DNS subdomain (a-z, 0-9, - and ., at most 253)", name)
	}
	return nil
}

// Zone returns the zone label of node cfg.Node: topology.kubernetes.io/zone,
// or failure-domain.beta.kubernetes.io/zone when the node has only that.
// A node with neither, an unreadable token or CA, and any answer but 200
// are errors saying so.
func Zone(ctx context.Context, cfg Config) (string, error) {
	cfg = cfg.withDefaults()
	labels, err := nodeLabels(ctx, cfg)
	if err != nil {
		return "", err
	}
	for _, l := range []string{ZoneLabel, LegacyZoneLabel} {
		if z := labels[l]; z != "" {
			return z, nil
		}
	}
	return "", fmt.Errorf("k8snode: node %s has no zone: neither label %s nor %s is set", cfg.Node, ZoneLabel, LegacyZoneLabel)
}

// nodeLabels fetches node cfg.Node and returns its labels.
func nodeLabels(ctx context.Context, cfg Config) (map[string]string, error) {
	if err := CheckNode(cfg.Node); err != nil {
		return nil, fmt.Errorf("k8snode: %w", err)
	}
	if cfg.Host == "" {
		return nil, errors.New("k8snode: no API server: KUBERNETES_SERVICE_HOST is unset (not in a Kubernetes pod?)")
	}
	b, err := os.ReadFile(cfg.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("k8snode: reading the service-account token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" || strings.ContainsFunc(token, unicode.IsControl) {
		return nil, fmt.Errorf("k8snode: the service-account token %s is empty or not one line", cfg.TokenFile)
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("k8snode: reading the API server's CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("k8snode: the CA file %s holds no PEM certificate", cfg.CAFile)
	}

	u := url.URL{Scheme: "https", Host: net.JoinHostPort(cfg.Host, cfg.Port), Path: "/api/v1/nodes/" + cfg.Node}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("k8snode: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	client := &http.Client{
		// Proxy is nil: the API server is asked directly, whatever
		// HTTPS_PROXY says.
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout: cfg.Timeout,
			DisableKeepAlives:   true,
		},
		// A redirect is an answer like any other non-200: never followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       cfg.Timeout,
	}
	resp, err := client.Do(req)
	if err != nil {
		if ue := (*url.Error)(nil); errors.As(err, &ue) {
			err = ue.Err // without its repetition of the method and URL
		}
		return nil, fmt.Errorf("k8snode: GET %s: %w", u.String(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("k8snode: GET %s: reading the answer: %w", u.String(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("k8snode: GET %s: %s%s: %s", u.String(), resp.Status, hint(resp.StatusCode), excerpt(body))
	}
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("k8snode: GET %s: the answer is larger than %d bytes", u.String(), MaxBodyBytes)
	}
	var node struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(body, &node); err != nil {
		return nil, fmt.Errorf("k8snode: GET %s: not a node object: %v", u.String(), err)
	}
	return node.Metadata.Labels, nil
}

// hint says what the usual cause of an error status is.
func hint(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return " (the service-account token was refused)"
	case http.StatusForbidden:
		return " (the pod's service account needs get on nodes: a ClusterRole and ClusterRoleBinding)"
	case http.StatusNotFound:
		return " (no such node)"
	}
	return ""
}

// excerpt is a short, quoted piece of an error answer: a Kubernetes
// Status's message, or the body's start.
func excerpt(body []byte) string {
	var status struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	}
	s := string(body)
	if json.Unmarshal(body, &status) == nil && status.Kind == "Status" && status.Message != "" {
		s = status.Message
	}
	const max = 256
	s = strings.TrimSpace(s)
	if len(s) > max {
		s = s[:max] + "..."
	}
	return fmt.Sprintf("%q", s)
}
