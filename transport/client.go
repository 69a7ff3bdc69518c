package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"

	"github.com/soullabs/brainy/internal/shrink"
	"github.com/soullabs/brainy/transport/pki"
)

// PushFunc handles a message the server pushed. addr is the server's
// address as passed to Call. msg is valid only until the function returns.
// ctx is cancelled when the pusher gives up or the connection is lost (and,
// as for HandlerFunc, not when the function returns).
// The returned error reaches the pusher as a *RemoteError. Push handlers run
// concurrently, each on its own goroutine, and may block (the pusher waits).
type PushFunc func(ctx context.Context, addr string, method uint16, msg []byte) error

// Client calls Servers. It keeps one connection per address, shared by all
// concurrent calls (one QUIC stream per call), dials on first use and again
// after the connection was lost, and serves pushes the servers send on
// those connections.
//
// Register OnPush, OnConnect and OnDisconnect before the first Call; calls
// are safe for concurrent use.
type Client struct {
	cfg     Config
	log     *slog.Logger
	tlsConf *tls.Config
	qconf   *quic.Config
	tr      *quic.Transport
	udp     *net.UDPConn

	onPush       atomic.Pointer[PushFunc]
	onConnect    atomic.Pointer[func(addr string)]
	onDisconnect atomic.Pointer[func(addr string)]

	mu    sync.RWMutex
	conns map[string]*clientConn // by address; guarded by mu
	peak  int                    // the most conns held (shrink.Map); guarded by mu
	// coalescers hold CallCoalesced's queues, by address; guarded by mu.
	// An entry goes when its address's connection does.
	coalescers map[string]*coalescer
	coPeak     int  // the most coalescers held; guarded by mu
	closed     bool // guarded by mu

	wg sync.WaitGroup // connection goroutines and push handlers

	counters                         streamCounters // pushes served
	dials, dialFailures, disconnects atomic.Uint64
	calls, callErrors, batches       atomic.Uint64
	sends, sendErrors                atomic.Uint64
}

// clientConn is one pooled connection. conn and err are written before
// ready is closed and never after.
type clientConn struct {
	addr    string
	ready   chan struct{}
	conn    *quic.Conn
	streams *streamPool
	err     error
	// dropped is set by Disconnect: the connection is closed as soon as
	// it is up, if it was still being dialled.
	dropped atomic.Bool
}

// NewClient validates cfg (after EnsureDefaults) and binds a UDP socket on
// the host of cfg.ListenAddr with an ephemeral port.
func NewClient(cfg Config) (*Client, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(cfg.ListenAddr)
	uaddr, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, errors.Join(errors.New("transport: resolve client address"), err)
	}
	udp, err := net.ListenUDP("udp", uaddr)
	if err != nil {
		return nil, &opError{op: "bind", addr: uaddr.String(), err: err}
	}
	return &Client{
		cfg:     cfg,
		log:     cfg.logger().With("component", "transport"),
		tlsConf: cfg.tlsConfig(),
		qconf:   cfg.quicConfig(),
		tr:      &quic.Transport{Conn: udp},
		udp:     udp,
		conns:   make(map[string]*clientConn),

		coalescers: make(map[string]*coalescer),
	}, nil
}

// OnPush sets the handler for messages servers push to this client. Without
// one, pushes fail at the pusher with CodeUnknownMethod.
func (c *Client) OnPush(f PushFunc) { c.onPush.Store(&f) }

// OnConnect sets a function called with the address after each new
// connection to a server is established, including reconnects: the place to
// (re)subscribe. It runs on its own goroutine and may block and Call.
func (c *Client) OnConnect(f func(addr string)) { c.onConnect.Store(&f) }

// OnDisconnect sets a function called with the address when a connection is
// lost: the server closed it, restarted (stateless reset) or stopped
// answering for IdleTimeout, or Disconnect dropped it. It is the fast
// failure signal. It is called on
// the connection's goroutine, once per connection, and must not block long
// or call Close. It is not called for connections closed by Client.Close.
func (c *Client) OnDisconnect(f func(addr string)) { c.onDisconnect.Store(&f) }

// Call sends req to the handler for method at addr and returns its answer.
// The answer is a new slice owned by the caller.
//
// Errors: ErrUnavailable (cannot connect, or the connection was lost while
// waiting; the handler may or may not have run), ErrUnauthenticated,
// ErrFrameTooLarge, ErrRemote (*RemoteError), ErrClosed, and ctx's error when
// ctx ends first (the server's handler then sees its context cancelled).
// Any of them but ErrRemote also matches ErrNotSent when the request
// provably never reached the handler: only then may a caller send a write
// elsewhere without risking it being applied twice.
// A call whose request was not sent, because the pooled connection or
// stream turned out to be dead, is retried once.
func (c *Client) Call(ctx context.Context, addr string, method uint16, req []byte) ([]byte, error) {
	c.calls.Add(1)
	return c.call(ctx, addr, method, req)
}

// call is Call without counting it.
func (c *Client) call(ctx context.Context, addr string, method uint16, req []byte) ([]byte, error) {
	var resp []byte
	sent, err := c.onConn(ctx, addr, func(cc *clientConn) (sent bool, err error) {
		resp, sent, err = roundTrip(ctx, cc.streams, kindRequest, method, req, c.cfg.MaxFrameBytes)
		return sent, err
	})
	if err != nil {
		c.callErrors.Add(1)
		return nil, callError(ctx, "call", addr, err, sent)
	}
	return resp, nil
}

// onConn runs trip, one exchange, on the pooled connection to addr
// (dialling if needed). When the exchange provably never reached a
// handler, it tries once more, on a new connection if that one is dead.
// sent and err are the last try's (a failed dial: not sent).
func (c *Client) onConn(ctx context.Context, addr string, trip func(*clientConn) (sent bool, err error)) (sent bool, err error) {
	for attempt := 0; ; attempt++ {
		cc, err := c.get(ctx, addr)
		if err != nil {
			return false, err
		}
		sent, err = trip(cc)
		if err == nil || sent || attempt > 0 || ctx.Err() != nil || classify(err) != ErrUnavailable {
			return sent, err
		}
		if cc.conn.Context().Err() != nil {
			c.forget(cc)
		}
	}
}

// Identify returns the identity (common name) and role that the verified
// certificate of the server at addr states, connecting if needed. It is how
// a node proves that a member gossip announces at addr is the node it
// claims to be: gossip itself carries no proof.
func (c *Client) Identify(ctx context.Context, addr string) (id string, role pki.Role, err error) {
	cc, err := c.get(ctx, addr)
	if err != nil {
		return "", "", callError(ctx, "identify", addr, err, false)
	}
	return peerID(cc.conn), peerRole(cc.conn), nil
}

// get returns the live pooled connection to addr, dialling if needed.
func (c *Client) get(ctx context.Context, addr string) (*clientConn, error) {
	c.mu.RLock()
	cc := c.conns[addr]
	c.mu.RUnlock()
	if cc == nil || (isReady(cc) && (cc.err != nil || cc.conn.Context().Err() != nil)) {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		cur := c.conns[addr]
		if cur == nil || cur == cc {
			cc = &clientConn{addr: addr, ready: make(chan struct{})}
			c.conns[addr] = cc
			c.wg.Add(1)
			go c.run(cc)
		} else {
			cc = cur
		}
		c.mu.Unlock()
	}
	select {
	case <-cc.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if cc.err != nil {
		return nil, cc.err
	}
	return cc, nil
}

func isReady(cc *clientConn) bool {
	select {
	case <-cc.ready:
		return true
	default:
		return false
	}
}

// forget removes cc from the pool if it is still there.
func (c *Client) forget(cc *clientConn) {
	c.mu.Lock()
	if c.conns[cc.addr] == cc {
		delete(c.conns, cc.addr)
		c.conns = shrink.Map(c.conns, &c.peak)
		c.dropCoalescer(cc.addr)
	}
	c.mu.Unlock()
}

// run dials cc's address, then serves the connection's pushes until it is
// lost. It runs on its own goroutine, one per connection.
func (c *Client) run(cc *clientConn) {
	defer c.wg.Done()
	c.dials.Add(1)
	conn, err := c.dial(cc.addr)
	if err != nil {
		c.dialFailures.Add(1)
		cc.err = err
		c.forget(cc)
		close(cc.ready)
		c.log.Debug("transport: dial failed", "addr", cc.addr, "error", err)
		return
	}
	cc.streams = newStreamPool(conn)
	if c.cfg.JoinToken != nil {
		str, err := sendJoin(conn, c.cfg.JoinToken, c.cfg.HandshakeTimeout)
		if err != nil {
			_ = conn.CloseWithError(connUnauthenticated, "join token not accepted")
			c.dialFailures.Add(1)
			cc.err = err
			c.forget(cc)
			close(cc.ready)
			c.log.Warn("transport: join token not accepted", "addr", cc.addr, "error", err)
			return
		}
		cc.streams.put(str)
	}
	cc.conn = conn
	close(cc.ready)
	c.log.Debug("transport: connected", "addr", cc.addr, "peer", peerID(conn))

	c.mu.RLock()
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		_ = conn.CloseWithError(connClosed, "client closed")
	} else if cc.dropped.Load() {
		_ = conn.CloseWithError(connClosed, "disconnected")
	} else if f := c.onConnect.Load(); f != nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			(*f)(cc.addr)
		}()
	}

	dispatch := func(ctx context.Context, method uint16, body []byte) ([]byte, error) {
		f := c.onPush.Load()
		if f == nil {
			return nil, &RemoteError{Code: CodeUnknownMethod, Message: "no push handler"}
		}
		return nil, (*f)(ctx, cc.addr, method, body)
	}
	for {
		str, err := conn.AcceptStream(context.Background())
		if err != nil {
			c.log.Debug("transport: disconnected", "addr", cc.addr, "error", err)
			break
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			serveStream(str, kindPush, c.cfg.MaxFrameBytes, dispatch, nil, &c.counters, c.log)
		}()
	}
	c.forget(cc)
	c.mu.RLock()
	closed = c.closed
	c.mu.RUnlock()
	if !closed {
		c.disconnects.Add(1)
	}
	if f := c.onDisconnect.Load(); f != nil && !closed {
		(*f)(cc.addr)
	}
}

func (c *Client) dial(addr string) (*quic.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.HandshakeTimeout)
	defer cancel()
	uaddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	tlsConf := c.tlsConf
	if tlsConf.ServerName == "" {
		tlsConf = tlsConf.Clone()
		tlsConf.ServerName, _, _ = net.SplitHostPort(addr)
	}
	return c.tr.Dial(ctx, uaddr, tlsConf, c.qconf)
}

// Disconnect closes the pooled connection to addr, if there is one, as if
// it were lost: calls on it fail, OnDisconnect is called, and the next
// Call to addr dials again. A connection lives as long as the server
// answers its keep-alives; Disconnect is how a caller lets go of a server
// it will not call again, such as a member that left the cluster.
func (c *Client) Disconnect(addr string) {
	c.mu.Lock()
	cc := c.conns[addr]
	delete(c.conns, addr)
	c.conns = shrink.Map(c.conns, &c.peak)
	c.dropCoalescer(addr)
	c.mu.Unlock()
	if cc == nil {
		return
	}
	// run checks dropped after ready is closed, so either it sees the flag
	// or the connection is up here.
	cc.dropped.Store(true)
	if isReady(cc) && cc.conn != nil {
		_ = cc.conn.CloseWithError(connClosed, "disconnected")
	}
}

// Metrics returns a snapshot of the client's counters.
func (c *Client) Metrics() ClientMetrics {
	c.mu.RLock()
	n := len(c.conns)
	c.mu.RUnlock()
	return ClientMetrics{
		Connections:    n,
		Dials:          c.dials.Load(),
		DialFailures:   c.dialFailures.Load(),
		Disconnects:    c.disconnects.Load(),
		Calls:          c.calls.Load(),
		CallErrors:     c.callErrors.Load(),
		Pushes:         c.counters.exchanges.Load(),
		FramesRejected: c.counters.rejected.Load(),
		HandlerPanics:  c.counters.panics.Load(),
		Batches:        c.batches.Load(),
		Sends:          c.sends.Load(),
		SendErrors:     c.sendErrors.Load(),
	}
}

// Close closes every connection and the socket and waits for push handlers
// to return. Calls in flight fail; later calls return ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	conns := make([]*clientConn, 0, len(c.conns))
	for _, cc := range c.conns {
		conns = append(conns, cc)
	}
	c.mu.Unlock()
	for _, cc := range conns {
		<-cc.ready
		if cc.conn != nil {
			_ = cc.conn.CloseWithError(connClosed, "client closed")
		}
	}
	_ = c.tr.Close()
	_ = c.udp.Close()
	c.wg.Wait()
	return nil
}
