package transport

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// collector is a handler that records the one-way messages it gets.
type collector struct {
	mu   sync.Mutex
	got  []string
	from []string
}

func (c *collector) handle(_ context.Context, p *Peer, req []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, string(req))
	c.from = append(c.from, p.ID())
	if string(req) == "refuse" {
		return nil, &RemoteError{Code: CodeUser, Message: "refused"}
	}
	return []byte("an answer nobody reads"), nil
}

func (c *collector) messages() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// TestSenderDeliversInOrder: one-way messages reach the handler in the
// order sent, with the sender's verified identity, and are never answered
// — a handler's error is counted, not returned.
func TestSenderDeliversInOrder(t *testing.T) {
	var col collector
	srv := startServer(t, nodeConfig(t, "server"), map[uint16]HandlerFunc{mEcho: col.handle})
	c := newClient(t, nodeConfig(t, "client"))
	s := c.NewSender(srv.Addr().String(), mEcho)
	defer s.Close()
	var want []string
	for i := range 300 {
		msg := fmt.Sprint(i)
		if i == 150 {
			msg = "refuse"
		}
		want = append(want, msg)
		if err := s.Send(context.Background(), []byte(msg)); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	waitFor(t, "every message", func() bool { return len(col.messages()) == len(want) })
	if got := col.messages(); !slices.Equal(got, want) {
		t.Fatalf("messages arrived as %v", got)
	}
	col.mu.Lock()
	from := slices.Clone(col.from)
	col.mu.Unlock()
	for _, id := range from {
		if id != "client" {
			t.Fatalf("a message from %q, want the certificate's name", id)
		}
	}
	if m := srv.Metrics(); m.Requests != 300 || m.RequestErrors != 1 {
		t.Fatalf("server counted %d requests, %d errors; want 300, 1", m.Requests, m.RequestErrors)
	}
	if m := c.Metrics(); m.Sends != 300 || m.SendErrors != 0 {
		t.Fatalf("client counted %d sends, %d errors", m.Sends, m.SendErrors)
	}
	// A stream that carried messages still serves calls on other streams
	// of the connection.
	if _, err := c.Call(context.Background(), srv.Addr().String(), mEcho, []byte("call")); err != nil {
		t.Fatal(err)
	}
}

// TestSenderAfterRestart: a Sender whose peer restarted sends on a new
// connection; messages after the restart arrive.
func TestSenderAfterRestart(t *testing.T) {
	cfg := nodeConfig(t, "server")
	var before, after collector
	srv := startServer(t, cfg, map[uint16]HandlerFunc{mEcho: before.handle})
	addr := srv.Addr().String()
	c := newClient(t, nodeConfig(t, "client"))
	s := c.NewSender(addr, mEcho)
	defer s.Close()
	if err := s.Send(context.Background(), []byte("1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first message", func() bool { return len(before.messages()) == 1 })
	crash(srv)
	cfg.ListenAddr = addr
	startServer(t, cfg, map[uint16]HandlerFunc{mEcho: after.handle})
	// Sends fail or vanish until the client learns the old connection is
	// gone; then they arrive.
	deadline := time.Now().Add(cfg.IdleTimeout)
	for len(after.messages()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no message reached the restarted server")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.Send(ctx, []byte("again"))
		cancel()
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSenderLimits: a message over MaxFrameBytes is refused unsent; a
// cancelled context fails the Send; the Sender carries on after both.
func TestSenderLimits(t *testing.T) {
	var col collector
	srv := startServer(t, nodeConfig(t, "server"), map[uint16]HandlerFunc{mEcho: col.handle})
	cfg := nodeConfig(t, "client")
	cfg.MaxFrameBytes = 1024
	c := newClient(t, cfg)
	s := c.NewSender(srv.Addr().String(), mEcho)
	defer s.Close()
	if err := s.Send(context.Background(), make([]byte, 1025)); !errors.Is(err, ErrFrameTooLarge) || !errors.Is(err, ErrNotSent) {
		t.Fatalf("an oversized message: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Send(ctx, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("a send with a cancelled context: %v", err)
	}
	if err := s.Send(context.Background(), []byte("fine")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message", func() bool { return slices.Contains(col.messages(), "fine") })
}

// TestSenderToAnOlderPeer: a peer that refuses one-way messages (a
// version before them) gets them as calls once the Sender learns it —
// from then on every message, in order, none lost.
func TestSenderToAnOlderPeer(t *testing.T) {
	var col collector
	srv, err := NewServer(nodeConfig(t, "server"))
	if err != nil {
		t.Fatal(err)
	}
	srv.oldKinds = true
	srv.Handle(mEcho, col.handle)
	go srv.Serve(context.Background())
	t.Cleanup(func() { _ = srv.Close() })
	c := newClient(t, nodeConfig(t, "client"))
	s := c.NewSender(srv.Addr().String(), mEcho)
	defer s.Close()
	// What was written before the refusal came back is lost, as on a
	// lossy link; a sender like raft's goes on sending.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; len(col.messages()) < 10; i++ {
		if time.Now().After(deadline) {
			t.Fatal("an older peer got no messages")
		}
		if err := s.Send(context.Background(), []byte(fmt.Sprint(i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		time.Sleep(time.Millisecond)
	}
	got := col.messages()
	for i := 1; i < len(got); i++ {
		if got[i] != fmt.Sprint(mustAtoi(t, got[i-1])+1) {
			t.Fatalf("an older peer got %v: not every message after the first, in order", got)
		}
	}
	if m := srv.Metrics(); m.FramesRejected != 1 {
		t.Fatalf("the older peer rejected %d frames, want one", m.FramesRejected)
	}
	// The peer is upgraded: restarted on its address, it takes one-way
	// messages, and the Sender sends them so once it connects again.
	addr := srv.Addr().String()
	_ = srv.Close()
	cfg := nodeConfig(t, "server")
	cfg.ListenAddr = addr
	var after collector
	startServer(t, cfg, map[uint16]HandlerFunc{mEcho: after.handle})
	deadline = time.Now().Add(10 * time.Second)
	for i := 0; len(after.messages()) < 10 || s.calls; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("after the upgrade: %d messages, sending as calls %v", len(after.messages()), s.calls)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.Send(ctx, []byte(fmt.Sprint(i)))
		cancel()
		time.Sleep(time.Millisecond)
	}
}

func mustAtoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
