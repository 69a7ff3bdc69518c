package loadtest

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// errBadURL marks a target that is not an http(s) URL with a host.
var errBadURL = errors.New("loadtest: target must be an http:// or https:// URL with a host")

// Placeholders a Template may contain.
const (
	phNone   = iota
	phKey    // {key}: the key number drawn from the key distribution
	phSeq    // {seq}: the request's sequence number in this worker
	phWorker // {worker}: the worker (connection) number
)

var placeholderNames = map[string]int{"key": phKey, "seq": phSeq, "worker": phWorker}

// Template is a parsed target URL whose path and query may contain the
// placeholders {key}, {seq} and {worker}. "{{" and "}}" stand for literal
// braces. Scheme and host are fixed: a run talks to one host.
type Template struct {
	// Scheme is "http" or "https".
	Scheme string
	// Host is the host as written, without port ("127.0.0.1", "::1", "localhost").
	Host string
	// Addr is host:port to dial.
	Addr string
	// HostHeader is the Host header value (host[:port] as written).
	HostHeader string
	segs       []segment
}

type segment struct {
	lit string
	ph  int
}

// ParseTemplate parses a URL template such as
// "http://127.0.0.1:8080/v1/items/k{key}?w={worker}".
func ParseTemplate(s string) (*Template, error) {
	var t Template
	rest, ok := strings.CutPrefix(s, "http://")
	t.Scheme = "http"
	if !ok {
		if rest, ok = strings.CutPrefix(s, "https://"); !ok {
			return nil, fmt.Errorf("%w: %q", errBadURL, s)
		}
		t.Scheme = "https"
	}
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	hostport, path := rest[:end], rest[end:]
	if hostport == "" || strings.ContainsAny(hostport, "{}@ \t\r\n#") {
		return nil, fmt.Errorf("%w: %q", errBadURL, s)
	}
	t.HostHeader = hostport
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port: the whole thing is the host (brackets allowed for IPv6).
		host, port = hostport, "80"
		if t.Scheme == "https" {
			port = "443"
		}
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
			if net.ParseIP(host) == nil {
				return nil, fmt.Errorf("%w: %q", errBadURL, s)
			}
		} else if strings.ContainsAny(host, "[]:") {
			return nil, fmt.Errorf("%w: %q", errBadURL, s)
		}
	}
	if host == "" {
		return nil, fmt.Errorf("%w: %q", errBadURL, s)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, fmt.Errorf("%w: bad port in %q", errBadURL, s)
	}
	t.Host = host
	t.Addr = net.JoinHostPort(host, port)
	if path == "" || path[0] == '?' {
		path = "/" + path
	}
	if strings.ContainsAny(path, " \t\r\n#") {
		return nil, fmt.Errorf("loadtest: URL template %q: path must not contain spaces, control characters or '#'", s)
	}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.segs = append(t.segs, segment{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(path); i++ {
		switch c := path[i]; c {
		case '{':
			if i+1 < len(path) && path[i+1] == '{' {
				lit.WriteByte('{')
				i++
				continue
			}
			j := strings.IndexByte(path[i:], '}')
			if j < 0 {
				return nil, fmt.Errorf("loadtest: URL template %q: unclosed '{'", s)
			}
			name := path[i+1 : i+j]
			ph, ok := placeholderNames[name]
			if !ok {
				return nil, fmt.Errorf("loadtest: URL template %q: unknown placeholder {%s} (want {key}, {seq} or {worker})", s, name)
			}
			flush()
			t.segs = append(t.segs, segment{ph: ph})
			i += j
		case '}':
			if i+1 < len(path) && path[i+1] == '}' {
				lit.WriteByte('}')
				i++
				continue
			}
			return nil, fmt.Errorf("loadtest: URL template %q: unmatched '}' (write '}}' for a literal brace)", s)
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return &t, nil
}

// HasPlaceholders reports whether the template varies from request to request.
func (t *Template) HasPlaceholders() bool {
	for _, s := range t.segs {
		if s.ph != phNone {
			return true
		}
	}
	return false
}

// uses reports whether the template contains placeholder ph.
func (t *Template) uses(ph int) bool {
	for _, s := range t.segs {
		if s.ph == ph {
			return true
		}
	}
	return false
}

// AppendPath appends the request URI (path and query) for one request to dst.
// It does not allocate when dst has room.
func (t *Template) AppendPath(dst []byte, key, seq uint64, worker int) []byte {
	for _, s := range t.segs {
		switch s.ph {
		case phNone:
			dst = append(dst, s.lit...)
		case phKey:
			dst = strconv.AppendUint(dst, key, 10)
		case phSeq:
			dst = strconv.AppendUint(dst, seq, 10)
		case phWorker:
			dst = strconv.AppendInt(dst, int64(worker), 10)
		}
	}
	return dst
}

// Path returns the template's path and query as written (placeholders kept).
func (t *Template) Path() string {
	var b strings.Builder
	for _, s := range t.segs {
		switch s.ph {
		case phNone:
			b.WriteString(strings.NewReplacer("{", "{{", "}", "}}").Replace(s.lit))
		case phKey:
			b.WriteString("{key}")
		case phSeq:
			b.WriteString("{seq}")
		case phWorker:
			b.WriteString("{worker}")
		}
	}
	return b.String()
}

// String returns the template in the form ParseTemplate accepts.
func (t *Template) String() string {
	return t.Scheme + "://" + t.HostHeader + t.Path()
}

// IsLoopback reports whether host (without port, IPv6 without brackets) is a
// loopback address (127.0.0.0/8, ::1) or the name localhost.
func IsLoopback(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkTarget parses the target and applies the loopback rule.
func (c *Config) checkTarget() error {
	t, err := ParseTemplate(c.Target)
	if err != nil {
		return err
	}
	if c.Workload == WorkloadItems && t.HasPlaceholders() {
		return fmt.Errorf("loadtest: Target %q: workload %q takes a base URL without placeholders", c.Target, WorkloadItems)
	}
	if !c.AllowRemote && !IsLoopback(t.Host) {
		return fmt.Errorf("loadtest: Target host %q is not loopback (127.0.0.0/8, ::1, localhost); set AllowRemote (--allow-remote) to load a remote host", t.Host)
	}
	return nil
}
