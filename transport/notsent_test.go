package transport

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// TestNotSentIsProven: ErrNotSent marks exactly the failures where the
// request cannot have reached a handler — a caller may send a write
// elsewhere only then. A call that timed out while its handler ran, or
// whose handler failed, must not carry it.
func TestNotSentIsProven(t *testing.T) {
	ran := atomic.Int32{}
	release := make(chan struct{})
	s := startServer(t, nodeConfig(t, "core-1"), map[uint16]HandlerFunc{
		1: func(ctx context.Context, _ *Peer, req []byte) ([]byte, error) {
			ran.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return req, nil
		},
		2: func(context.Context, *Peer, []byte) ([]byte, error) { return nil, errors.New("no") },
	})
	defer close(release)
	c := newClient(t, nodeConfig(t, "edge-1"))
	addr := s.Addr().String()
	if _, err := c.Call(context.Background(), addr, 2, nil); err == nil {
		t.Fatal("a failing handler answered")
	}

	// Delivered, then the caller gave up: the handler ran; not ErrNotSent.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := c.Call(ctx, addr, 1, []byte("write"))
	cancel()
	if err == nil || errors.Is(err, ErrNotSent) {
		t.Fatalf("a call whose handler ran: %v (must not be ErrNotSent)", err)
	}
	for ran.Load() == 0 {
		time.Sleep(time.Millisecond) // the handler may start just after the caller gave up
	}
	// A handler's own error is an answer, not a failure to send.
	if _, err := c.Call(context.Background(), addr, 2, nil); errors.Is(err, ErrNotSent) {
		t.Fatalf("a remote error carries ErrNotSent: %v", err)
	}

	// Nobody listening: nothing was sent.
	dead := newClient(t, nodeConfig(t, "edge-2"))
	s2 := startServer(t, nodeConfig(t, "core-2"), nil)
	gone := s2.Addr().String()
	s2.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := dead.Call(ctx, gone, 1, []byte("write")); !errors.Is(err, ErrNotSent) {
		t.Fatalf("a call to a closed server: %v (want ErrNotSent)", err)
	}
	// Too large to send: refused before anything left.
	big := make([]byte, c.cfg.MaxFrameBytes+1)
	if _, err := c.Call(context.Background(), addr, 1, big); !errors.Is(err, ErrFrameTooLarge) || !errors.Is(err, ErrNotSent) {
		t.Fatalf("an oversized request: %v (want ErrFrameTooLarge and ErrNotSent)", err)
	}
}
