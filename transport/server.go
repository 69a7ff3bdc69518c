package transport

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/soullabs/brainy/internal/shrink"
	"github.com/soullabs/brainy/transport/pki"
)

// HandlerFunc answers one request. ctx is cancelled when the caller's
// context ends (the caller resets the stream) or the connection is lost;
// it belongs to the stream, which later requests reuse, so it is not
// cancelled when the handler returns: don't tie work that outlives the
// handler to it.
// req is valid only until the handler returns: copy what you keep. The
// answer may be req itself or part of it; the transport does not modify
// the answer and does not keep it after sending. Return a *RemoteError to
// choose the error code the caller sees. Handlers run concurrently, each on
// its own goroutine, and may block.
type HandlerFunc func(ctx context.Context, peer *Peer, req []byte) ([]byte, error)

// Server accepts connections from cluster peers and dispatches their
// requests to handlers by method. It can push messages to connected peers
// through *Peer.
//
// Use: NewServer (binds the socket), Handle for each method, Serve, and
// Shutdown (drain) or Close (or cancel Serve's context) to stop.
type Server struct {
	cfg  Config
	log  *slog.Logger
	tr   *quic.Transport
	ln   *quic.Listener
	udp  *net.UDPConn
	quit chan struct{} // closed by Close

	handlers atomic.Pointer[map[uint16]HandlerFunc] // copy on write; guarded for writers by mu

	mu     sync.Mutex
	peers  map[*Peer]struct{} // connected peers; guarded by mu
	peak   int                // the most peers held (shrink.Map); guarded by mu
	closed bool               // guarded by mu

	counters           streamCounters
	draining           atomic.Bool  // set by Shutdown: refuse new requests
	inflight           atomic.Int64 // handlers running
	accepted           atomic.Uint64
	pushes, pushErrors atomic.Uint64

	closeOnce sync.Once
	wg        sync.WaitGroup // connection and stream goroutines

	// oldKinds, set by tests, makes the server refuse batch frames and
	// one-way messages as a server older than them does.
	oldKinds bool
}

// Peer is a connected client as the Server sees it. Handlers receive the
// caller's Peer; keep it to push messages to that client later (subscribe +
// push). A Peer is valid until Done is closed.
type Peer struct {
	id      string
	role    pki.Role
	conn    *quic.Conn
	srv     *Server
	streams *streamPool // push streams
}

// NewServer validates cfg (after EnsureDefaults) and binds cfg.ListenAddr.
// The server accepts connections once Serve runs.
func NewServer(cfg Config) (*Server, error) {
	cfg.EnsureDefaults()
	if err := cfg.validServer(); err != nil {
		return nil, err
	}
	uaddr, err := net.ResolveUDPAddr("udp", cfg.ListenAddr)
	if err != nil {
		return nil, errors.Join(errors.New("transport: resolve listen address"), err)
	}
	udp, err := net.ListenUDP("udp", uaddr)
	if err != nil {
		return nil, &opError{op: "listen", addr: cfg.ListenAddr, err: err}
	}
	tr := &quic.Transport{Conn: udp, StatelessResetKey: cfg.resetKey()}
	ln, err := tr.Listen(cfg.tlsConfig(), cfg.quicConfig())
	if err != nil {
		_ = tr.Close()
		_ = udp.Close()
		return nil, &opError{op: "listen", addr: cfg.ListenAddr, err: err}
	}
	s := &Server{
		cfg:   cfg,
		log:   cfg.logger().With("component", "transport"),
		tr:    tr,
		ln:    ln,
		udp:   udp,
		quit:  make(chan struct{}),
		peers: make(map[*Peer]struct{}),
	}
	s.handlers.Store(&map[uint16]HandlerFunc{})
	return s, nil
}

// Addr is the address the server listens on (with the real port when
// ListenAddr asked for port 0).
func (s *Server) Addr() net.Addr { return s.udp.LocalAddr() }

// Handle registers h for method, replacing any earlier handler. It is safe
// to call at any time, also while serving.
func (s *Server) Handle(method uint16, h HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.handlers.Load()
	m := make(map[uint16]HandlerFunc, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[method] = h
	s.handlers.Store(&m)
}

// Serve accepts connections until ctx is done or Close is called, then
// closes the server and returns nil. It returns an error only if accepting
// fails for another reason.
func (s *Server) Serve(ctx context.Context) error {
	s.log.Info("transport: serving", "addr", s.Addr().String(), "max_frame_bytes", s.cfg.MaxFrameBytes,
		"idle_timeout", s.cfg.IdleTimeout, "keep_alive_period", s.cfg.KeepAlivePeriod)
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer stop()
	for {
		conn, err := s.ln.Accept(ctx)
		if err != nil {
			select {
			case <-s.quit:
				return nil
			default:
			}
			if ctx.Err() != nil {
				_ = s.Close()
				return nil
			}
			return &opError{op: "accept", addr: s.Addr().String(), kind: ErrUnavailable, err: err}
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = conn.CloseWithError(connClosed, "server closed")
			continue
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(conn)
	}
}

func peerID(conn *quic.Conn) string {
	certs := conn.ConnectionState().TLS.PeerCertificates
	if len(certs) == 0 {
		return ""
	}
	return certs[0].Subject.CommonName
}

// peerRole is the role the verified certificate of conn's peer carries.
func peerRole(conn *quic.Conn) pki.Role {
	certs := conn.ConnectionState().TLS.PeerCertificates
	if len(certs) == 0 {
		return ""
	}
	return pki.RoleOf(certs[0])
}

// serveConn checks the join token if one is configured, registers the
// peer and serves its streams until the connection ends.
func (s *Server) serveConn(conn *quic.Conn) {
	defer s.wg.Done()
	p := &Peer{id: peerID(conn), role: peerRole(conn), conn: conn, srv: s, streams: newStreamPool(conn)}
	var first *quic.Stream
	if s.cfg.JoinToken != nil {
		str, err := checkJoin(conn, s.cfg.JoinToken, s.cfg.HandshakeTimeout)
		if err != nil {
			s.log.Warn("transport: connection refused: join token", "peer", p.id, "remote_addr", conn.RemoteAddr().String(), "error", err)
			_ = conn.CloseWithError(connUnauthenticated, "join token not accepted")
			return
		}
		first = str
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = conn.CloseWithError(connClosed, "server closed")
		return
	}
	s.peers[p] = struct{}{}
	s.accepted.Add(1)
	s.mu.Unlock()

	s.log.Debug("transport: peer connected", "peer", p.id, "remote_addr", p.conn.RemoteAddr().String())
	dispatch := func(ctx context.Context, method uint16, body []byte) ([]byte, error) {
		// Count first, then check: Shutdown sets draining, then waits for
		// the count, so every handler either runs to the end or never starts.
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
		if s.draining.Load() {
			return nil, &RemoteError{Code: CodeShuttingDown, Message: "server shutting down"}
		}
		h := (*s.handlers.Load())[method]
		if h == nil {
			return nil, &RemoteError{Code: CodeUnknownMethod, Message: "unknown method " + strconv.Itoa(int(method))}
		}
		return h(ctx, p, body)
	}
	// The calls batches run at once on this connection: no more than the
	// streams the peer may open, so batching cannot multiply its share.
	slots := make(chan struct{}, s.cfg.MaxConcurrentStreams)
	if s.oldKinds {
		slots = nil
	}
	if first != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			serveStream(first, kindRequest, s.cfg.MaxFrameBytes, dispatch, slots, &s.counters, s.log)
		}()
	}
	for {
		str, err := p.conn.AcceptStream(context.Background())
		if err != nil {
			s.log.Debug("transport: peer disconnected", "peer", p.id, "remote_addr", p.conn.RemoteAddr().String(), "error", err)
			break
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			serveStream(str, kindRequest, s.cfg.MaxFrameBytes, dispatch, slots, &s.counters, s.log)
		}()
	}
	s.mu.Lock()
	delete(s.peers, p)
	s.peers = shrink.Map(s.peers, &s.peak)
	s.mu.Unlock()
}

// Peers returns the currently connected peers.
func (s *Server) Peers() []*Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Peer, 0, len(s.peers))
	for p := range s.peers {
		out = append(out, p)
	}
	return out
}

// Metrics returns a snapshot of the server's counters.
func (s *Server) Metrics() ServerMetrics {
	s.mu.Lock()
	n := len(s.peers)
	s.mu.Unlock()
	return ServerMetrics{
		Connections:         n,
		ConnectionsAccepted: s.accepted.Load(),
		Requests:            s.counters.exchanges.Load(),
		RequestErrors:       s.counters.errors.Load(),
		FramesRejected:      s.counters.rejected.Load(),
		Pushes:              s.pushes.Load(),
		PushErrors:          s.pushErrors.Load(),
		HandlerPanics:       s.counters.panics.Load(),
		Batches:             s.counters.batches.Load(),
	}
}

// Shutdown drains the server, then closes it: requests that arrive from
// now on are refused with CodeShuttingDown (callers see ErrUnavailable and
// know the handler did not run, so they can go to another node), and
// Shutdown waits for running handlers to finish before closing the
// connections. If ctx ends first, it closes at once (running handlers see
// their contexts cancelled) and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for s.inflight.Load() > 0 {
		select {
		case <-ctx.Done():
			_ = s.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
	return s.Close()
}

// Close closes every connection (peers see an orderly close at once) and
// the socket, and waits for connection and handler goroutines to finish.
// Handlers see their context cancelled. Close is idempotent.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.quit)
		peers := make([]*Peer, 0, len(s.peers))
		for p := range s.peers {
			peers = append(peers, p)
		}
		s.mu.Unlock()
		for _, p := range peers {
			_ = p.conn.CloseWithError(connClosed, "server closed")
		}
		_ = s.ln.Close()
		_ = s.tr.Close()
		_ = s.udp.Close()
		s.wg.Wait()
		s.log.Info("transport: server closed", "addr", s.udp.LocalAddr().String())
	})
	return nil
}

// ID is the peer's node name: the common name of its client certificate,
// verified against the cluster CA.
func (p *Peer) ID() string { return p.id }

// Role returns the role the peer's verified certificate was issued for
// (pki.RoleOf): what the peer may call.
func (p *Peer) Role() pki.Role { return p.role }

// RemoteAddr is the peer's UDP address.
func (p *Peer) RemoteAddr() net.Addr { return p.conn.RemoteAddr() }

// Done is closed when the connection to the peer is gone; drop the Peer
// (for example its subscriptions) then. The client reconnects with a new
// connection, and so a new Peer.
func (p *Peer) Done() <-chan struct{} { return p.conn.Context().Done() }

// Push sends msg to the peer's push handler (Client.OnPush) on a new
// server-initiated stream and waits until the handler returned. It fails
// with ErrUnavailable when the connection is gone, ErrRemote when the
// handler returned an error, ErrFrameTooLarge when msg exceeds
// MaxFrameBytes, and the context's error when ctx ends first. Push is safe
// for concurrent use.
func (p *Peer) Push(ctx context.Context, method uint16, msg []byte) error {
	p.srv.pushes.Add(1)
	_, sent, err := roundTrip(ctx, p.streams, kindPush, method, msg, p.srv.cfg.MaxFrameBytes)
	if err != nil {
		p.srv.pushErrors.Add(1)
		return callError(ctx, "push", p.id, err, sent)
	}
	return nil
}
