package main

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// Object classes: what a request's key is, by the layout of tiers/segment
// (seg/, ckpt/, MANIFEST under node-<id>/) and tiers/claim
// (_cluster/claims/node-<id>, _cluster/leader).
const (
	classSegment    = "segment"
	classCheckpoint = "checkpoint"
	classManifest   = "manifest"
	classClaim      = "claim"
	classOther      = "other"
)

// Operations, as an S3 server sees them.
const (
	opPut      = "put"       // PutObject (also a claim's create or renewal)
	opGet      = "get"       // GetObject, whole
	opRangeGet = "range-get" // GetObject with a Range header
	opHead     = "head"      // HeadObject or HeadBucket
	opDelete   = "delete"    // DeleteObject or DeleteObjects
	opList     = "list"      // ListObjects(V2)
	opOther    = "other"
)

// reqKind is what one S3 request was: its operation, the class of its
// key, and which storage prefix (the first path element of the key: one
// per node in this benchmark) it went to.
type reqKind struct {
	Op, Class, Owner string
}

// classify reads a path-style S3 request (/bucket/key?query).
func classify(method, path string, query url.Values, hasRange bool) reqKind {
	path = strings.TrimPrefix(path, "/")
	_, key, _ := strings.Cut(path, "/") // drop the bucket
	k := reqKind{Op: opOther, Class: classOther}
	if key == "" {
		// A bucket request: a listing names its prefix.
		if p := query.Get("prefix"); p != "" {
			key = p
		}
	}
	k.Owner, _, _ = strings.Cut(key, "/")
	switch {
	case strings.Contains(key, "/seg/") || strings.HasSuffix(key, "/seg/"):
		k.Class = classSegment
	case strings.Contains(key, "/ckpt/"):
		k.Class = classCheckpoint
	case strings.HasSuffix(key, "/MANIFEST"):
		k.Class = classManifest
	case strings.Contains(key, "_cluster/"):
		k.Class = classClaim
	}
	objectKey := !strings.HasSuffix(path, "/") && strings.Contains(path, "/")
	switch {
	case method == http.MethodPut && objectKey && !query.Has("uploadId") && !query.Has("tagging") && !query.Has("acl"):
		k.Op = opPut
	case method == http.MethodGet && (query.Has("list-type") || !objectKey):
		k.Op = opList
	case method == http.MethodGet && hasRange:
		k.Op = opRangeGet
	case method == http.MethodGet:
		k.Op = opGet
	case method == http.MethodHead:
		k.Op = opHead
	case method == http.MethodDelete, method == http.MethodPost && query.Has("delete"):
		k.Op = opDelete
	}
	return k
}

// tally is what a counter holds for one kind of request.
type tally struct {
	N      int64 // requests answered 2xx
	Failed int64 // requests answered otherwise (a lost conditional write: 412)
	Bytes  int64 // request body bytes of the 2xx ones
}

// counts is a snapshot of a proxy's counters.
type counts map[reqKind]tally

// sub returns c - before.
func (c counts) sub(before counts) counts {
	out := counts{}
	for k, v := range c {
		b := before[k]
		if d := (tally{v.N - b.N, v.Failed - b.Failed, v.Bytes - b.Bytes}); d != (tally{}) {
			out[k] = d
		}
	}
	return out
}

// sum adds up the tallies whose kind match keeps.
func (c counts) sum(match func(reqKind) bool) tally {
	var t tally
	for k, v := range c {
		if match(k) {
			t.N += v.N
			t.Failed += v.Failed
			t.Bytes += v.Bytes
		}
	}
	return t
}

// proxy is a reverse proxy in front of an S3 server that counts the
// requests passing through it. It keeps the client's Host header, which
// the request's signature covers.
type proxy struct {
	ln  net.Listener
	srv *http.Server

	mu     sync.Mutex
	counts counts // guarded by mu
}

// startProxy listens on a free loopback port and forwards to target.
func startProxy(target string) (*proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, counts: counts{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := classify(r.Method, r.URL.Path, r.URL.Query(), r.Header.Get("Range") != "")
		sw := &statusWriter{ResponseWriter: w}
		rp.ServeHTTP(sw, r)
		p.mu.Lock()
		t := p.counts[k]
		if sw.status/100 == 2 {
			t.N++
			if r.ContentLength > 0 {
				t.Bytes += r.ContentLength
			}
		} else {
			t.Failed++
		}
		p.counts[k] = t
		p.mu.Unlock()
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's address, for a storage URL's endpoint.
func (p *proxy) URL() string { return "http://" + p.ln.Addr().String() }

// snapshot copies the counters.
func (p *proxy) snapshot() counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(counts, len(p.counts))
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

func (p *proxy) close() { _ = p.srv.Close() }

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets the reverse proxy stream answers.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
