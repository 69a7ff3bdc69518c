package main

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		hasRange       bool
		want           reqKind
	}{
		{"PUT", "/b/run-n1/node-n1/seg/0000000000000001", false, reqKind{opPut, classSegment, "run-n1"}},
		{"PUT", "/b/run-n1/node-n1/ckpt/0000000000000100", false, reqKind{opPut, classCheckpoint, "run-n1"}},
		{"PUT", "/b/run-n1/node-n1/MANIFEST", false, reqKind{opPut, classManifest, "run-n1"}},
		{"PUT", "/b/run-n1/_cluster/claims/node-n1", false, reqKind{opPut, classClaim, "run-n1"}},
		{"PUT", "/b/run-n1/somethingelse", false, reqKind{opPut, classOther, "run-n1"}},
		{"GET", "/b/run-n1/node-n1/seg/0000000000000001", true, reqKind{opRangeGet, classSegment, "run-n1"}},
		{"GET", "/b/run-n1/node-n1/MANIFEST", false, reqKind{opGet, classManifest, "run-n1"}},
		{"GET", "/b?list-type=2&prefix=run-n1%2Fnode-n1%2Fseg%2F", false, reqKind{opList, classSegment, "run-n1"}},
		{"DELETE", "/b/run-n1/node-n1/seg/0000000000000001", false, reqKind{opDelete, classSegment, "run-n1"}},
		{"POST", "/b?delete", false, reqKind{opDelete, classOther, ""}},
		{"HEAD", "/b", false, reqKind{opHead, classOther, ""}},
		{"PUT", "/b/run-n1/node-n1/seg/x?uploadId=1&partNumber=1", false, reqKind{opOther, classSegment, "run-n1"}},
	} {
		u, err := url.Parse(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		if got := classify(tc.method, u.Path, u.Query(), tc.hasRange); got != tc.want {
			t.Errorf("%s %s: %+v, want %+v", tc.method, tc.target, got, tc.want)
		}
	}
}

// TestProxyCounts: the proxy forwards with the client's Host header (which
// an S3 signature covers) and counts answers by kind and status.
func TestProxyCounts(t *testing.T) {
	var hosts []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts = append(hosts, r.Host)
		if strings.HasSuffix(r.URL.Path, "/MANIFEST") {
			w.WriteHeader(http.StatusPreconditionFailed)
			return
		}
	}))
	defer srv.Close()
	p, err := startProxy(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	before := p.snapshot()
	for _, path := range []string{"/b/r/node-1/seg/1", "/b/r/node-1/seg/2", "/b/r/node-1/MANIFEST"} {
		req, _ := http.NewRequest("PUT", p.URL()+path, strings.NewReader("12345"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	got := p.snapshot().sub(before)
	if seg := got[reqKind{opPut, classSegment, "r"}]; seg != (tally{N: 2, Bytes: 10}) {
		t.Errorf("segment Puts: %+v", seg)
	}
	if m := got[reqKind{opPut, classManifest, "r"}]; m != (tally{Failed: 1}) {
		t.Errorf("MANIFEST Puts: %+v", m)
	}
	if puts(got).N != 2 {
		t.Errorf("puts: %+v", puts(got))
	}
	want := strings.TrimPrefix(p.URL(), "http://")
	for _, h := range hosts {
		if h != want {
			t.Fatalf("the server saw Host %q, want the proxy's %q", h, want)
		}
	}
}
