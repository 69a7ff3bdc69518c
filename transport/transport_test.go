package transport

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/transport/pki"
)

func TestMain(m *testing.M) {
	// Loopback tests don't need large UDP buffers; keep quic-go quiet.
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	os.Exit(m.Run())
}

var clusterCA = sync.OnceValue(func() *pki.CA {
	ca, err := pki.NewCA("test cluster CA")
	if err != nil {
		panic(err)
	}
	return ca
})

func testBundle(t testing.TB, ca *pki.CA, name string) *pki.Bundle {
	t.Helper()
	b, err := ca.NewBundle(name, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nodeConfig is LocalConfig for a node of the test cluster.
func nodeConfig(t testing.TB, name string) Config {
	return LocalConfig(testBundle(t, clusterCA(), name).TLSConfig())
}

// startServer starts a server with cfg and the given handlers; it is closed
// when the test ends.
func startServer(t testing.TB, cfg Config, handlers map[uint16]HandlerFunc) *Server {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for m, h := range handlers {
		s.Handle(m, h)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func newClient(t testing.TB, cfg Config) *Client {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// crash stops s without telling its peers, as a killed process would.
func crash(s *Server) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.quit)
		s.mu.Unlock()
		_ = s.tr.Close()
		_ = s.udp.Close()
		s.wg.Wait()
	})
}

func echo(_ context.Context, _ *Peer, req []byte) ([]byte, error) {
	return append([]byte(nil), req...), nil
}

const (
	mEcho uint16 = iota + 1
	mWhoAmI
	mFail
	mFailCode
	mPanic
	mBlock
	mSubscribe
	mBig
	mEchoInPlace
)

func TestRoundTrip(t *testing.T) {
	srv := startServer(t, nodeConfig(t, "server"), map[uint16]HandlerFunc{
		mEcho: echo,
		mEchoInPlace: func(_ context.Context, _ *Peer, req []byte) ([]byte, error) {
			return req[1:], nil // answers with the request's own bytes
		},
		mWhoAmI: func(_ context.Context, p *Peer, _ []byte) ([]byte, error) { return []byte(p.ID()), nil },
		mFail:   func(context.Context, *Peer, []byte) ([]byte, error) { return nil, errors.New("boom") },
		mFailCode: func(context.Context, *Peer, []byte) ([]byte, error) {
			return nil, &RemoteError{Code: CodeUser + 4, Message: "not found"}
		},
		mPanic: func(context.Context, *Peer, []byte) ([]byte, error) { panic("bad") },
	})
	c := newClient(t, nodeConfig(t, "client-1"))
	addr := srv.Addr().String()

	tests := []struct {
		name     string
		method   uint16
		req      []byte
		want     []byte
		wantCode uint16 // 0: success
		wantMsg  string
	}{
		{name: "echo", method: mEcho, req: []byte("hello"), want: []byte("hello")},
		{name: "empty", method: mEcho, req: nil, want: []byte{}},
		{name: "answer aliases request", method: mEchoInPlace, req: []byte("xabcdefgh"), want: []byte("abcdefgh")},
		{name: "large", method: mEcho, req: bytes.Repeat([]byte("x"), 1<<20), want: bytes.Repeat([]byte("x"), 1<<20)},
		{name: "peer id", method: mWhoAmI, want: []byte("client-1")},
		{name: "handler error", method: mFail, wantCode: CodeInternal, wantMsg: "boom"},
		{name: "remote error code", method: mFailCode, wantCode: CodeUser + 4, wantMsg: "not found"},
		{name: "panic", method: mPanic, wantCode: CodeInternal, wantMsg: "handler panicked"},
		{name: "unknown method", method: 999, wantCode: CodeUnknownMethod, wantMsg: "unknown method 999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Call(context.Background(), addr, tt.method, tt.req)
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.want) {
					t.Fatalf("got %d bytes %q, want %d bytes", len(got), trunc(got), len(tt.want))
				}
				return
			}
			var re *RemoteError
			if !errors.Is(err, ErrRemote) || !errors.As(err, &re) {
				t.Fatalf("err = %v, want ErrRemote", err)
			}
			if re.Code != tt.wantCode || re.Message != tt.wantMsg {
				t.Fatalf("remote error = (%d, %q), want (%d, %q)", re.Code, re.Message, tt.wantCode, tt.wantMsg)
			}
			if !strings.HasPrefix(err.Error(), "transport: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
	if n := len(srv.Peers()); n != 1 {
		t.Fatalf("server has %d connections, want 1 (pooled)", n)
	}
	if n := srv.Metrics().HandlerPanics; n != 1 {
		t.Fatalf("server counted %d handler panics, want 1", n)
	}
}

func trunc(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}

func TestConcurrentCallsShareOneConnection(t *testing.T) {
	var inFlight, maxInFlight atomic.Int64
	srv := startServer(t, nodeConfig(t, "server"), map[uint16]HandlerFunc{
		mEcho: func(ctx context.Context, p *Peer, req []byte) ([]byte, error) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for {
				m := maxInFlight.Load()
				if n <= m || maxInFlight.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
			return echo(ctx, p, req)
		},
	})
	c := newClient(t, nodeConfig(t, "client"))
	addr := srv.Addr().String()

	const calls = 500
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() {
			req := []byte(strings.Repeat("r", i%50) + "#" + string(rune('a'+i%26)))
			got, err := c.Call(context.Background(), addr, mEcho, req)
			if err == nil && !bytes.Equal(got, req) {
				err = errors.New("answer belongs to another call")
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	if n := len(srv.Peers()); n != 1 {
		t.Fatalf("server has %d connections, want 1", n)
	}
	if maxInFlight.Load() < 50 {
		t.Fatalf("at most %d handlers ran at once; calls are not multiplexed", maxInFlight.Load())
	}
	t.Logf("%d calls of 20ms in %v, up to %d in flight on one connection", calls, elapsed, maxInFlight.Load())
}

func TestContextReachesHandler(t *testing.T) {
	handlerDone := make(chan error, 1)
	started := make(chan struct{}, 1)
	srv := startServer(t, nodeConfig(t, "server"), map[uint16]HandlerFunc{
		mBlock: func(ctx context.Context, _ *Peer, _ []byte) ([]byte, error) {
			started <- struct{}{}
			select {
			case <-ctx.Done():
				handlerDone <- ctx.Err()
			case <-time.After(5 * time.Second):
				handlerDone <- errors.New("handler context never cancelled")
			}
			return nil, nil
		},
	})
	c := newClient(t, nodeConfig(t, "client"))
	addr := srv.Addr().String()

	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		stop func(context.CancelFunc)
		want error
	}{
		{
			name: "deadline",
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 100*time.Millisecond)
			},
			stop: func(context.CancelFunc) {},
			want: context.DeadlineExceeded,
		},
		{
			name: "cancel",
			ctx:  func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			stop: func(cancel context.CancelFunc) { <-started; cancel(); started <- struct{}{} },
			want: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			go tt.stop(cancel)
			_, err := c.Call(ctx, addr, mBlock, []byte("x"))
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			<-started
			select {
			case herr := <-handlerDone:
				if herr == nil || !errors.Is(herr, context.Canceled) {
					t.Fatalf("handler saw %v, want its context cancelled", herr)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("handler's context not cancelled")
			}
		})
	}
	// The connection is still good.
	if _, err := c.Call(context.Background(), addr, mBlock+100, nil); !errors.Is(err, ErrRemote) {
		t.Fatalf("call after cancellations: %v", err)
	}
}

func TestFrameTooLarge(t *testing.T) {
	const small = 1 << 10
	big := bytes.Repeat([]byte("b"), 4*small)
	bigAnswer := func(context.Context, *Peer, []byte) ([]byte, error) { return big, nil }

	smallCfg, largeCfg := nodeConfig(t, "small"), nodeConfig(t, "large")
	smallCfg.MaxFrameBytes, largeCfg.MaxFrameBytes = small, 1<<20

	tests := []struct {
		name           string
		server, client Config
		method         uint16
		req            []byte
	}{
		{name: "request over server limit", server: smallCfg, client: largeCfg, method: mEcho, req: big},
		{name: "request over own limit", server: largeCfg, client: smallCfg, method: mEcho, req: big},
		{name: "answer over client limit", server: largeCfg, client: smallCfg, method: mBig},
		{name: "answer over server limit", server: smallCfg, client: largeCfg, method: mBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, tt.server, map[uint16]HandlerFunc{mEcho: echo, mBig: bigAnswer})
			c := newClient(t, tt.client)
			addr := srv.Addr().String()
			_, err := c.Call(context.Background(), addr, tt.method, tt.req)
			if !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("err = %v, want ErrFrameTooLarge", err)
			}
			if tt.req != nil && tt.server.MaxFrameBytes < len(tt.req) {
				if m := srv.Metrics(); m.FramesRejected != 1 || m.Requests != 0 {
					t.Fatalf("server metrics %+v; want one rejected frame, no request", m)
				}
			}
			// Only the stream was reset: the connection still works.
			got, err := c.Call(context.Background(), addr, mEcho, []byte("ok"))
			if err != nil || string(got) != "ok" {
				t.Fatalf("call after rejected frame: %q, %v", got, err)
			}
		})
	}
}

func TestReconnectAfterRestart(t *testing.T) {
	for _, mode := range []string{"graceful", "crash"} {
		t.Run(mode, func(t *testing.T) {
			cfg := nodeConfig(t, "server")
			srv := startServer(t, cfg, map[uint16]HandlerFunc{mEcho: echo})
			addr := srv.Addr().String()
			c := newClient(t, nodeConfig(t, "client"))
			var connects, disconnects atomic.Int64
			lost := make(chan struct{}, 4)
			c.OnConnect(func(string) { connects.Add(1) })
			c.OnDisconnect(func(string) { disconnects.Add(1); lost <- struct{}{} })
			if _, err := c.Call(context.Background(), addr, mEcho, []byte("1")); err != nil {
				t.Fatal(err)
			}
			if mode == "graceful" {
				_ = srv.Close()
			} else {
				crash(srv)
			}
			cfg.ListenAddr = addr
			startServer(t, cfg, map[uint16]HandlerFunc{mEcho: echo})
			// An orderly close reaches the client at once; after a crash
			// the client learns of the restart from the stateless reset the
			// new server sends for the old connection's next keep-alive,
			// well before the idle timeout.
			select {
			case <-lost:
			case <-time.After(cfg.IdleTimeout / 2):
				t.Fatal("no disconnect notification within half the idle timeout")
			}
			got, err := c.Call(context.Background(), addr, mEcho, []byte("2"))
			if err != nil || string(got) != "2" {
				t.Fatalf("call after restart: %q, %v", got, err)
			}
			if connects.Load() != 2 || disconnects.Load() != 1 {
				t.Fatalf("connects %d, disconnects %d; want 2, 1", connects.Load(), disconnects.Load())
			}
			if m := c.Metrics(); m.Dials != 2 || m.Disconnects != 1 || m.Connections != 1 || m.CallErrors != 0 {
				t.Fatalf("client metrics %+v", m)
			}
		})
	}
}

func TestDisconnectNotification(t *testing.T) {
	tests := []struct {
		name   string
		stop   func(*Server)
		within time.Duration
	}{
		{name: "server closed", stop: func(s *Server) { _ = s.Close() }, within: 500 * time.Millisecond},
		// A silent death is noticed after IdleTimeout: 600ms with the
		// fast-failover timers the client uses here.
		{name: "server crashed", stop: crash, within: 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, nodeConfig(t, "server"), map[uint16]HandlerFunc{mEcho: echo})
			addr := srv.Addr().String()
			ccfg := nodeConfig(t, "client")
			fast := FastFailoverConfig(ccfg.TLS)
			ccfg.IdleTimeout, ccfg.KeepAlivePeriod = fast.IdleTimeout, fast.KeepAlivePeriod
			ccfg.HandshakeTimeout = 500 * time.Millisecond // dialling the dead server below
			c := newClient(t, ccfg)
			lost := make(chan string, 1)
			c.OnDisconnect(func(a string) { lost <- a })
			if _, err := c.Call(context.Background(), addr, mEcho, nil); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			tt.stop(srv)
			select {
			case got := <-lost:
				if got != addr {
					t.Fatalf("OnDisconnect(%q), want %q", got, addr)
				}
				t.Logf("noticed after %v", time.Since(start))
			case <-time.After(tt.within):
				t.Fatalf("no OnDisconnect within %v", tt.within)
			}
			_, err := c.Call(context.Background(), addr, mEcho, nil)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("call to a dead server: %v, want ErrUnavailable", err)
			}
		})
	}
}

// pubsub is what later code builds on push: a subscribe handler keeps the
// peer, a publisher pushes to every subscriber.
type pubsub struct {
	mu   sync.Mutex
	subs map[*Peer]struct{}
}

func (ps *pubsub) subscribe(_ context.Context, p *Peer, _ []byte) ([]byte, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.subs == nil {
		ps.subs = make(map[*Peer]struct{})
	}
	if _, ok := ps.subs[p]; !ok {
		ps.subs[p] = struct{}{}
		go func() {
			<-p.Done()
			ps.mu.Lock()
			delete(ps.subs, p)
			ps.mu.Unlock()
		}()
	}
	return nil, nil
}

func (ps *pubsub) publish(ctx context.Context, method uint16, msg []byte) (delivered int, err error) {
	ps.mu.Lock()
	peers := make([]*Peer, 0, len(ps.subs))
	for p := range ps.subs {
		peers = append(peers, p)
	}
	ps.mu.Unlock()
	for _, p := range peers {
		if err := p.Push(ctx, method, msg); err != nil {
			return delivered, err
		}
		delivered++
	}
	return delivered, nil
}

func TestPush(t *testing.T) {
	cfg := nodeConfig(t, "server")
	ps := &pubsub{}
	srv := startServer(t, cfg, map[uint16]HandlerFunc{mSubscribe: ps.subscribe})
	addr := srv.Addr().String()

	c := newClient(t, nodeConfig(t, "client"))
	got := make(chan string, 10)
	c.OnPush(func(_ context.Context, from string, method uint16, msg []byte) error {
		if from != addr || method != 7 {
			return errors.New("unexpected push")
		}
		if string(msg) == "reject" {
			return &RemoteError{Code: CodeUser, Message: "rejected"}
		}
		got <- string(msg)
		return nil
	})
	subscribed := make(chan struct{}, 4)
	c.OnConnect(func(a string) {
		if _, err := c.Call(context.Background(), a, mSubscribe, nil); err != nil {
			t.Errorf("subscribe: %v", err)
		}
		subscribed <- struct{}{}
	})

	publish := func(msg string) {
		t.Helper()
		n, err := ps.publish(context.Background(), 7, []byte(msg))
		if err != nil || n != 1 {
			t.Fatalf("publish: %d delivered, %v", n, err)
		}
		select {
		case m := <-got:
			if m != msg {
				t.Fatalf("pushed %q, got %q", msg, m)
			}
		case <-time.After(time.Second):
			t.Fatal("push not received")
		}
	}

	// The first call connects; OnConnect subscribes.
	if _, err := c.Call(context.Background(), addr, mEcho, nil); !errors.Is(err, ErrRemote) {
		t.Fatal(err)
	}
	<-subscribed
	publish("inv:item-1")
	publish("inv:item-2")
	if _, err := ps.publish(context.Background(), 7, []byte("reject")); !errors.Is(err, ErrRemote) {
		t.Fatalf("push to a failing handler: %v, want ErrRemote", err)
	}
	big := make([]byte, cfg.MaxFrameBytes+1)
	if _, err := ps.publish(context.Background(), 7, big); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized push: %v, want ErrFrameTooLarge", err)
	}

	// After a restart the client reconnects on its next call and
	// resubscribes; the new server's pushes arrive.
	lost := make(chan struct{}, 1)
	c.OnDisconnect(func(string) { lost <- struct{}{} })
	_ = srv.Close()
	<-lost
	ps2 := &pubsub{}
	cfg.ListenAddr = addr
	startServer(t, cfg, map[uint16]HandlerFunc{mSubscribe: ps2.subscribe})
	if _, err := c.Call(context.Background(), addr, mEcho, nil); !errors.Is(err, ErrRemote) {
		t.Fatal(err)
	}
	<-subscribed
	ps = ps2
	publish("inv:item-3")

	// A subscriber that goes away is dropped.
	_ = c.Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		ps.mu.Lock()
		n := len(ps.subs)
		ps.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("subscriber not dropped after the client closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With fewer streams allowed than concurrent calls, calls wait for a
// stream another call hands back instead of stalling.
func TestStreamLimit(t *testing.T) {
	for _, limit := range []int{1, 4} {
		t.Run(strconv.Itoa(limit), func(t *testing.T) {
			cfg := nodeConfig(t, "server")
			cfg.MaxConcurrentStreams = limit
			srv := startServer(t, cfg, map[uint16]HandlerFunc{
				mEcho: func(ctx context.Context, p *Peer, req []byte) ([]byte, error) {
					time.Sleep(time.Millisecond)
					return echo(ctx, p, req)
				},
			})
			c := newClient(t, nodeConfig(t, "client"))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for range 40 {
				wg.Go(func() {
					for i := range 6 {
						// Remote errors complete the exchange: their streams
						// are reused like any other.
						method := mEcho
						if i%2 == 1 {
							method = 999
						}
						_, err := c.Call(ctx, srv.Addr().String(), method, []byte("x"))
						if (method == mEcho && err != nil) || (method != mEcho && !errors.Is(err, ErrRemote)) {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		})
	}
}

func TestServerCloseCancelsHandlers(t *testing.T) {
	started := make(chan struct{})
	cancelled := make(chan struct{})
	srv := startServer(t, nodeConfig(t, "server"), map[uint16]HandlerFunc{
		mBlock: func(ctx context.Context, _ *Peer, _ []byte) ([]byte, error) {
			close(started)
			<-ctx.Done()
			close(cancelled)
			return nil, ctx.Err()
		},
	})
	c := newClient(t, nodeConfig(t, "client"))
	callErr := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), srv.Addr().String(), mBlock, nil)
		callErr <- err
	}()
	<-started
	_ = srv.Close()
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("handler context not cancelled by Close")
	}
	if err := <-callErr; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("call cut by server close: %v, want ErrUnavailable", err)
	}
}

func TestLifecycle(t *testing.T) {
	cfg := nodeConfig(t, "server")
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle(mEcho, echo)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()

	c := newClient(t, nodeConfig(t, "client"))
	addr := srv.Addr().String()
	if _, err := c.Call(context.Background(), addr, mEcho, nil); err != nil {
		t.Fatal(err)
	}
	// Cancelling Serve's context closes the server.
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// A closed client refuses calls.
	_ = c.Close()
	if _, err := c.Call(context.Background(), addr, mEcho, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("call on a closed client: %v, want ErrClosed", err)
	}
	if _, err := NewClient(Config{}); err == nil {
		t.Fatal("NewClient accepted a config without TLS")
	}
	if _, err := NewServer(Config{}); err == nil {
		t.Fatal("NewServer accepted a config without TLS")
	}
}

func TestShutdownDrains(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	cfg := nodeConfig(t, "server")
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle(mBlock, func(context.Context, *Peer, []byte) ([]byte, error) {
		close(started)
		<-release
		return []byte("done"), nil
	})
	srv.Handle(mEcho, echo)
	go func() { _ = srv.Serve(context.Background()) }()
	t.Cleanup(func() { _ = srv.Close() })
	c := newClient(t, nodeConfig(t, "client"))
	addr := srv.Addr().String()

	slow := make(chan error, 1)
	go func() {
		got, err := c.Call(context.Background(), addr, mBlock, nil)
		if err == nil && string(got) != "done" {
			err = errors.New("wrong answer")
		}
		slow <- err
	}()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()

	// New requests are refused while the running one finishes.
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := c.Call(context.Background(), addr, mEcho, []byte("x"))
		var re *RemoteError
		if errors.As(err, &re) && re.Code == CodeShuttingDown {
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("refused call does not match ErrUnavailable: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("calls not refused while draining: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a handler was running", err)
	default:
	}
	close(release)
	if err := <-slow; err != nil {
		t.Fatalf("call running during Shutdown: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// TestDisconnect: Disconnect closes a pooled connection (the server sees
// it go, the client reports it lost) and a later call dials again.
func TestDisconnect(t *testing.T) {
	srv := startServer(t, nodeConfig(t, "server"), map[uint16]HandlerFunc{mEcho: echo})
	addr := srv.Addr().String()
	c := newClient(t, nodeConfig(t, "client"))
	lost := make(chan string, 1)
	c.OnDisconnect(func(a string) { lost <- a })
	if _, err := c.Call(context.Background(), addr, mEcho, nil); err != nil {
		t.Fatal(err)
	}
	c.Disconnect("127.0.0.1:1") // no connection there: nothing happens
	c.Disconnect(addr)
	select {
	case got := <-lost:
		if got != addr {
			t.Fatalf("OnDisconnect(%q), want %q", got, addr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no OnDisconnect 10s after Disconnect")
	}
	if n := c.Metrics().Connections; n != 0 {
		t.Fatalf("%d pooled connections after Disconnect, want 0", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for srv.Metrics().Connections != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the server still holds the connection 5s after Disconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.Call(context.Background(), addr, mEcho, nil); err != nil {
		t.Fatalf("call after Disconnect: %v", err)
	}
	if m := c.Metrics(); m.Connections != 1 || m.Dials != 2 {
		t.Fatalf("after a new call: %d connections, %d dials; want 1 and 2", m.Connections, m.Dials)
	}
}
