package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// holdSlots makes CallCoalesced's slots free only when their exchange is
// answered, for the test: what queues then leaves at a known moment.
func holdSlots(t *testing.T) {
	old := coalesceHold
	coalesceHold = time.Hour
	t.Cleanup(func() { coalesceHold = old })
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func queued(c *Client, addr string) int {
	co := c.coalescerOf(addr)
	co.mu.Lock()
	defer co.mu.Unlock()
	return len(co.queue)
}

// TestCallCoalescedBatches: calls made while the slots are taken wait and
// leave as one batch frame; each gets its own answer or its own error.
func TestCallCoalescedBatches(t *testing.T) {
	holdSlots(t)
	var arrived atomic.Int32
	release := make(chan struct{})
	wait := func(ctx context.Context) {
		arrived.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
	srv := startServer(t, nodeConfig(t, "server"), map[uint16]HandlerFunc{
		mEcho: func(ctx context.Context, p *Peer, req []byte) ([]byte, error) {
			wait(ctx)
			return append([]byte(p.ID()+":"), req...), nil
		},
		mFailCode: func(ctx context.Context, _ *Peer, req []byte) ([]byte, error) {
			wait(ctx)
			return nil, &RemoteError{Code: CodeUser + 7, Message: "no " + string(req)}
		},
	})
	addr := srv.Addr().String()
	c := newClient(t, nodeConfig(t, "client"))

	const n = 40
	type result struct {
		resp []byte
		err  error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	call := func(i int) {
		defer wg.Done()
		method := mEcho
		if i%3 == 0 {
			method = mFailCode
		}
		resp, err := c.CallCoalesced(context.Background(), addr, method, []byte(fmt.Sprint(i)))
		results[i] = result{resp, err}
	}
	// Two calls take the slots and reach the handler; the rest queue.
	wg.Add(2)
	go call(0)
	go call(1)
	waitFor(t, "two calls at the handler", func() bool { return arrived.Load() == 2 })
	wg.Add(n - 2)
	for i := 2; i < n; i++ {
		go call(i)
	}
	waitFor(t, "the rest queued", func() bool { return queued(c, addr) == n-2 })
	if got := arrived.Load(); got != 2 {
		t.Fatalf("%d calls reached the handler while the slots were taken, want 2", got)
	}
	close(release)
	wg.Wait()

	for i, r := range results {
		if i%3 == 0 {
			var re *RemoteError
			if !errors.As(r.err, &re) || re.Code != CodeUser+7 || re.Message != fmt.Sprintf("no %d", i) {
				t.Errorf("call %d: got %q, %v; want its own remote error", i, r.resp, r.err)
			}
			continue
		}
		if want := fmt.Sprintf("client:%d", i); r.err != nil || string(r.resp) != want {
			t.Errorf("call %d: got %q, %v; want %q", i, r.resp, r.err, want)
		}
	}
	m := srv.Metrics()
	if m.Batches != 1 || m.Requests != n {
		t.Errorf("server saw %d batches, %d requests; want 1 batch, %d requests", m.Batches, m.Requests, n)
	}
	if cm := c.Metrics(); cm.Calls != n || cm.Batches != 1 {
		t.Errorf("client counted %d calls, %d batches; want %d, 1", cm.Calls, cm.Batches, n)
	}
}

// TestCallCoalescedSlowCallsDoNotHold: an exchange holds its slot at most
// coalesceHold, so calls that wait long on the server (a write to a
// partition without quorum) do not hold up the calls behind them.
func TestCallCoalescedSlowCallsDoNotHold(t *testing.T) {
	release := make(chan struct{})
	srv := startServer(t, nodeConfig(t, "server"), map[uint16]HandlerFunc{
		mEcho: echo,
		mBlock: func(ctx context.Context, _ *Peer, _ []byte) ([]byte, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		},
	})
	defer close(release)
	addr := srv.Addr().String()
	c := newClient(t, nodeConfig(t, "client"))
	for range 2 * coalesceSlots {
		go func() { _, _ = c.CallCoalesced(context.Background(), addr, mBlock, nil) }()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := c.CallCoalesced(ctx, addr, mEcho, []byte("through")); err != nil || string(resp) != "through" {
		t.Fatalf("a call behind blocked ones: %q, %v", resp, err)
	}
}

// TestCallCoalescedGivesUpQueued: a call whose context ends while it
// waits in the queue was not sent, and never reaches the handler.
func TestCallCoalescedGivesUpQueued(t *testing.T) {
	holdSlots(t)
	var echoed atomic.Int32
	release := make(chan struct{})
	srv := startServer(t, nodeConfig(t, "server"), map[uint16]HandlerFunc{
		mEcho: func(_ context.Context, _ *Peer, req []byte) ([]byte, error) {
			echoed.Add(1)
			return req, nil
		},
		mBlock: func(ctx context.Context, _ *Peer, _ []byte) ([]byte, error) {
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		},
	})
	addr := srv.Addr().String()
	c := newClient(t, nodeConfig(t, "client"))
	var wg sync.WaitGroup
	for range coalesceSlots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.CallCoalesced(context.Background(), addr, mBlock, nil)
		}()
	}
	waitFor(t, "the slots taken", func() bool {
		co := c.coalescerOf(addr)
		co.mu.Lock()
		defer co.mu.Unlock()
		return co.used == coalesceSlots
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.CallCoalesced(ctx, addr, mEcho, []byte("never"))
		done <- err
	}()
	waitFor(t, "the call queued", func() bool { return queued(c, addr) == 1 })
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrNotSent) {
		t.Fatalf("a call given up in the queue: %v; want context.Canceled and ErrNotSent", err)
	}
	if n := queued(c, addr); n != 0 {
		t.Fatalf("%d calls left in the queue", n)
	}
	close(release)
	wg.Wait()
	// A call after the slots freed goes, and is the only echo served.
	if _, err := c.CallCoalesced(context.Background(), addr, mEcho, []byte("now")); err != nil {
		t.Fatal(err)
	}
	if n := echoed.Load(); n != 1 {
		t.Fatalf("the echo handler ran %d times, want 1: the abandoned call was sent", n)
	}
}

// TestBatchBoundsHandlers: a peer's batches run no more handlers at once
// than the streams it may open (MaxConcurrentStreams), however many calls
// a batch carries.
func TestBatchBoundsHandlers(t *testing.T) {
	var running, most atomic.Int32
	cfg := nodeConfig(t, "server")
	cfg.MaxConcurrentStreams = 4
	srv := startServer(t, cfg, map[uint16]HandlerFunc{
		mEcho: func(_ context.Context, _ *Peer, req []byte) ([]byte, error) {
			n := running.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			running.Add(-1)
			return req, nil
		},
	})
	addr := srv.Addr().String()
	c := newClient(t, nodeConfig(t, "client"))
	ctx := context.Background()
	cc, err := c.get(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	calls := make([]*coalescedCall, maxBatchCalls)
	for i := range calls {
		calls[i] = &coalescedCall{ctx: ctx, method: mEcho, req: []byte(fmt.Sprint(i)), done: make(chan struct{})}
	}
	sent, err := batchTrip(ctx, cc.streams, appendBatch(nil, calls), calls, cfg.MaxFrameBytes, func() {})
	if err != nil || !sent {
		t.Fatalf("batch: sent %v, %v", sent, err)
	}
	for i, call := range calls {
		if !call.answered || string(call.resp) != fmt.Sprint(i) || call.err != nil {
			t.Fatalf("call %d: answered %v, %q, %v", i, call.answered, call.resp, call.err)
		}
	}
	if m := most.Load(); m > 4 {
		t.Fatalf("%d handlers ran at once, want at most MaxConcurrentStreams (4)", m)
	}
}

// TestMalformedBatchRejected: a batch frame that does not parse resets
// its stream and is counted; the connection and server carry on.
func TestMalformedBatchRejected(t *testing.T) {
	var ran atomic.Int32
	srv := startServer(t, nodeConfig(t, "server"), map[uint16]HandlerFunc{
		mEcho: func(_ context.Context, _ *Peer, req []byte) ([]byte, error) {
			ran.Add(1)
			return req, nil
		},
	})
	addr := srv.Addr().String()
	c := newClient(t, nodeConfig(t, "client"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := c.get(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	one := appendBatch(nil, []*coalescedCall{{method: mEcho, req: []byte("x")}})
	bad := map[string][]byte{
		"empty":             {},
		"no calls":          {0, 0},
		"too many calls":    {0, maxBatchCalls + 1},
		"count beyond body": {0, 2, 0, byte(mEcho), 0, 0, 0, 0},
		"length beyond":     {0, 1, 0, byte(mEcho), 0, 0, 0, 9, 'x'},
		"trailing bytes":    append(bytes.Clone(one), 'z'),
		"header cut":        {0, 1, 0, byte(mEcho), 0},
	}
	for name, body := range bad {
		before := srv.Metrics().FramesRejected
		calls := []*coalescedCall{{ctx: ctx, done: make(chan struct{})}, {ctx: ctx, done: make(chan struct{})}}
		if _, err := batchTrip(ctx, cc.streams, body, calls, 1<<20, func() {}); err == nil {
			t.Errorf("%s: answered", name)
		}
		if got := srv.Metrics().FramesRejected; got != before+1 {
			t.Errorf("%s: FramesRejected %d → %d, want one more", name, before, got)
		}
	}
	if n := ran.Load(); n != 0 {
		t.Fatalf("a handler ran %d times for malformed batches", n)
	}
	if resp, err := c.Call(ctx, addr, mEcho, []byte("fine")); err != nil || string(resp) != "fine" {
		t.Fatalf("a call after malformed batches: %q, %v", resp, err)
	}
}

// FuzzDecodeBatch: any body either fails to decode or is a batch that
// encodes back to exactly it.
func FuzzDecodeBatch(f *testing.F) {
	f.Add(appendBatch(nil, []*coalescedCall{{method: 3, req: []byte("abc")}, {method: 9}}))
	f.Add([]byte{0, 1, 0, 1, 0, 0, 0, 0})
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		methods, bodies, err := decodeBatch(in)
		if err != nil {
			return
		}
		if len(methods) == 0 || len(methods) > maxBatchCalls || len(methods) != len(bodies) {
			t.Fatalf("decoded %d calls", len(methods))
		}
		calls := make([]*coalescedCall, len(methods))
		for i := range methods {
			calls[i] = &coalescedCall{method: methods[i], req: bodies[i]}
		}
		if out := appendBatch(nil, calls); !bytes.Equal(out, in) {
			t.Fatalf("re-encoded %x, decoded from %x", out, in)
		}
	})
}

// TestCallCoalescedToAnOlderPeer: a peer that refuses batch frames (a
// version before them) handled none of the batch's calls: each goes
// again alone, and later calls go one by one.
func TestCallCoalescedToAnOlderPeer(t *testing.T) {
	holdSlots(t)
	release := make(chan struct{})
	var echoed atomic.Int32
	srv, err := NewServer(nodeConfig(t, "server"))
	if err != nil {
		t.Fatal(err)
	}
	srv.oldKinds = true
	srv.Handle(mEcho, func(_ context.Context, _ *Peer, req []byte) ([]byte, error) {
		echoed.Add(1)
		return req, nil
	})
	srv.Handle(mBlock, func(ctx context.Context, _ *Peer, _ []byte) ([]byte, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	go srv.Serve(context.Background())
	t.Cleanup(func() { _ = srv.Close() })
	addr := srv.Addr().String()
	c := newClient(t, nodeConfig(t, "client"))
	var wg sync.WaitGroup
	for range coalesceSlots {
		wg.Go(func() { _, _ = c.CallCoalesced(context.Background(), addr, mBlock, nil) })
	}
	waitFor(t, "the slots taken", func() bool {
		co := c.coalescerOf(addr)
		co.mu.Lock()
		defer co.mu.Unlock()
		return co.used == coalesceSlots
	})
	results := make([]string, 10)
	errs := make([]error, 10)
	for i := range results {
		wg.Go(func() {
			var resp []byte
			resp, errs[i] = c.CallCoalesced(context.Background(), addr, mEcho, []byte(fmt.Sprint(i)))
			results[i] = string(resp)
		})
	}
	waitFor(t, "the calls queued", func() bool { return queued(c, addr) == 10 })
	close(release)
	wg.Wait()
	for i := range results {
		if errs[i] != nil || results[i] != fmt.Sprint(i) {
			t.Fatalf("call %d to an older peer: %q, %v", i, results[i], errs[i])
		}
	}
	if n := echoed.Load(); n != 10 {
		t.Fatalf("the handler ran %d times, want each call once (10)", n)
	}
	if resp, err := c.CallCoalesced(context.Background(), addr, mEcho, []byte("later")); err != nil || string(resp) != "later" {
		t.Fatalf("a later call: %q, %v", resp, err)
	}
	if m := srv.Metrics(); m.Batches != 0 || m.FramesRejected != 1 {
		t.Fatalf("the older peer served %d batches and rejected %d frames; want 0 and 1", m.Batches, m.FramesRejected)
	}
}
