package transport

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
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
// keep-alive on loopback, without TLS: the anchor BenchmarkCall is measured
// against.
func BenchmarkHTTPAnchor(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(benchResp)
	})}
	go func() { _ = hs.Serve(ln) }()
	b.Cleanup(func() { _ = hs.Close() })
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}}
	b.Cleanup(hc.CloseIdleConnections)
	url := "http://" + ln.Addr().String() + "/call"
	call := func() error {
		resp, err := hc.Post(url, "application/octet-stream", bytes.NewReader(benchReq))
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
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := call(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
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
