package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// benchReq is a small request like an item get: a key and a few bytes of
// framing.
var benchReq = []byte("get tenant-1/person/item-000000000042")

// benchResp is a small item record.
var benchResp = bytes.Repeat([]byte("v"), 128)

// BenchmarkCall is a small request/response round trip over QUIC (TLS 1.3,
// mutual authentication) on loopback. Compare with BenchmarkHTTPAnchor in
// the same run.
func BenchmarkCall(b *testing.B) {
	srv := startServer(b, nodeConfig(b, "server"), map[uint16]HandlerFunc{
		mEcho: func(context.Context, *Peer, []byte) ([]byte, error) { return benchResp, nil },
	})
	c := newClient(b, nodeConfig(b, "client"))
	addr := srv.Addr().String()
	ctx := context.Background()
	if _, err := c.Call(ctx, addr, mEcho, benchReq); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Call(ctx, addr, mEcho, benchReq); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("serial_deadline", func(b *testing.B) {
		// A context with a deadline, as real calls have: the stream is
		// reset if it passes.
		dctx, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.Call(dctx, addr, mEcho, benchReq); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.Call(ctx, addr, mEcho, benchReq); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkHTTPAnchor is the same round trip over net/http HTTP/1.1 with
// keep-alive on loopback: the anchor BenchmarkCall is measured against.
// "serial" and "parallel" are plain TCP; the tls_ variants add TLS 1.3
// (server authentication only), closer to what BenchmarkCall does.
func BenchmarkHTTPAnchor(b *testing.B) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(benchResp)
	})
	plain := httptest.NewServer(handler)
	b.Cleanup(plain.Close)
	secure := httptest.NewUnstartedServer(handler)
	secure.TLS = &tls.Config{MinVersion: tls.VersionTLS13}
	secure.StartTLS()
	b.Cleanup(secure.Close)

	for _, v := range []struct {
		name string
		url  string
		hc   *http.Client
	}{
		{"", plain.URL, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}},
		{"tls_", secure.URL, secure.Client()},
	} {
		if tr, ok := v.hc.Transport.(*http.Transport); ok {
			tr.MaxIdleConnsPerHost = 256
			tr.DisableCompression = true
		}
		b.Cleanup(v.hc.CloseIdleConnections)
		url := v.url + "/call"
		call := func() error {
			resp, err := v.hc.Post(url, "application/octet-stream", bytes.NewReader(benchReq))
			if err != nil {
				return err
			}
			_, err = io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			return err
		}
		if err := call(); err != nil {
			b.Fatal(err)
		}
		b.Run(v.name+"serial", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := call(); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(v.name+"parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := call(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
