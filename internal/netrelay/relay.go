// Package netrelay emulates a slow or unreliable wide-area link between
// processes that all run on one machine.
//
// Multi-region tests run real brainy-core processes on 127.0.0.x addresses,
// one cluster per region. The kernel in the test environment has no netem, so
// latency, loss and partitions cannot be configured on the interfaces.
// Instead a Relay is placed in front of a region's port: it listens on an
// address of its own and forwards everything it receives to the real port
// (the Target), holding each datagram or stream chunk back for the configured
// delay. Nodes in other regions are given the relay's address instead of the
// node's own, so only cross-region traffic pays the emulated cost.
//
// A Relay carries both transports that a node uses on one port number:
//
//   - UDP, for QUIC and for hashicorp/memberlist's gossip packets. Each client
//     source address gets its own flow with its own upstream socket connected
//     to the Target, so the Target's replies (which go back to that socket)
//     can be returned to the right client.
//   - TCP, for memberlist's push/pull streams. Each accepted connection gets
//     its own upstream connection; bytes are relayed in the chunks one Read
//     returned, each chunk delayed like a datagram. TCP is never dropped
//     (that would break the stream), only delayed, and reading pauses when too
//     much is in flight so that a fast sender cannot grow memory without
//     bound.
//
// Delay is applied by a first-in first-out queue per flow and per direction,
// drained by one goroutine that sleeps until the head's due time. Queueing
// rather than spawning a goroutine or timer per packet keeps the cost flat
// under load and, more importantly, keeps packets of one flow in order even
// when jitter is configured: a packet is never released before the packet
// queued ahead of it.
//
// The relay sees only addresses, not protocols. Replies that a Target sends
// to an address other than the relay's flow socket (memberlist, for example,
// acknowledges pings at the sender's advertised address) bypass this relay;
// to delay both directions, put a relay in front of every region and
// advertise the relays' addresses.
package netrelay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for the bounds in Config.
const (
	// DefaultMaxFlows bounds concurrent UDP flows and, separately, concurrent
	// TCP connections when Config.MaxFlows is zero.
	DefaultMaxFlows = 1024
	// DefaultMaxQueuedBytes bounds the bytes held back per flow and direction
	// when Config.MaxQueuedBytes is zero.
	DefaultMaxQueuedBytes = 4 << 20
	// DefaultUDPIdleTimeout is how long a UDP flow may carry no traffic in
	// either direction before its upstream socket is closed. QUIC and
	// memberlist both send keep-alives far more often than this, so only
	// flows whose client has gone away expire.
	DefaultUDPIdleTimeout = 60 * time.Second
)

const (
	// maxDatagram is the largest UDP payload over IPv4 and IPv6; reading
	// into a smaller buffer would silently truncate odd but legal datagrams.
	maxDatagram = 64 << 10
	// tcpChunk is the read size for TCP. It bounds the granularity at which
	// the stream is delayed and is small enough to be well under the default
	// MaxQueuedBytes.
	tcpChunk = 32 << 10
	// dialTimeout bounds how long an accepted TCP connection waits for the
	// Target before it is closed; memberlist's own stream timeout is 10 s.
	dialTimeout = 10 * time.Second
	// bindAttempts bounds the search for a port free for both UDP and TCP.
	bindAttempts = 100
)

// Config describes one relay. The zero value of every field other than
// Target is usable.
type Config struct {
	// Listen is the host:port the relay binds. UDP and TCP are bound on the
	// same port because memberlist expects both on one port number. Port 0
	// picks a free port that is free for both. Empty means "127.0.0.1:0".
	Listen string
	// Target is the host:port of the real service. Its UDP address is
	// resolved once, at Start; TCP dials resolve it on every connection.
	Target string

	// Delay is the one-way delay added to every datagram and every TCP
	// chunk, in each direction, so a request and its reply through the relay
	// pay it twice. It can be changed later with SetDelay.
	Delay time.Duration
	// Jitter adds a uniformly distributed extra delay in [0, Jitter) to each
	// datagram or chunk. It never reorders packets within one flow and
	// direction: a packet whose draw would overtake its predecessor is held
	// until the predecessor's due time instead.
	Jitter time.Duration
	// Loss is the probability in [0, 1] that a UDP datagram is dropped. TCP
	// is never dropped. It can be changed later with SetLoss.
	Loss float64
	// Seed seeds the random source used for Loss and Jitter, so that a run
	// that feeds the relay the same sequence of packets drops and delays the
	// same ones. Concurrent flows interleave their draws, so determinism
	// holds only as far as the packet order does.
	Seed int64

	// UDP and TCP select the transports to relay. Both false means both.
	UDP, TCP bool

	// MaxFlows bounds concurrent UDP flows, and separately concurrent TCP
	// connections. Datagrams from a new client beyond the bound are dropped;
	// TCP connections beyond it are closed at once. Zero means
	// DefaultMaxFlows.
	MaxFlows int
	// MaxQueuedBytes bounds the bytes held back per flow and direction. A
	// datagram that would exceed it is dropped, as a full router queue
	// would; a TCP reader waits for room instead, which lets TCP flow
	// control slow the sender. A single datagram or chunk is always
	// accepted into an empty queue. Zero means DefaultMaxQueuedBytes.
	MaxQueuedBytes int

	// idleTimeout overrides DefaultUDPIdleTimeout; tests set it to observe
	// expiry without waiting a minute.
	idleTimeout time.Duration
}

// Stats is a snapshot of a relay's counters. Counters are cumulative since
// Start; the flow and connection gauges are current.
type Stats struct {
	// ToTarget counts traffic from clients to the Target, ToClient the
	// replies from the Target back to clients.
	ToTarget, ToClient DirStats

	// UDPFlows is the number of live UDP flows.
	UDPFlows int
	// TCPActive is the number of live TCP connections, including those
	// still dialing the Target.
	TCPActive int
	// TCPAccepted counts TCP connections relayed to the Target.
	TCPAccepted uint64
	// TCPRefused counts TCP connections closed at once: while cut, beyond
	// MaxFlows, or because the Target could not be dialed.
	TCPRefused uint64
}

// DirStats counts the traffic of one direction.
type DirStats struct {
	// Datagrams and Bytes count UDP datagrams delivered and their payload
	// bytes.
	Datagrams, Bytes uint64
	// DroppedDatagrams and DroppedBytes count UDP datagrams dropped by
	// Loss, by Cut, by a full queue, by MaxFlows, or by a failed send.
	DroppedDatagrams, DroppedBytes uint64
	// TCPBytes counts stream bytes delivered.
	TCPBytes uint64
}

// dirCounters is the live, atomically updated form of DirStats.
type dirCounters struct {
	datagrams, bytes               atomic.Uint64
	droppedDatagrams, droppedBytes atomic.Uint64
	tcpBytes                       atomic.Uint64
}

func (c *dirCounters) delivered(n int) {
	c.datagrams.Add(1)
	c.bytes.Add(uint64(n))
}

func (c *dirCounters) dropped(n int) {
	c.droppedDatagrams.Add(1)
	c.droppedBytes.Add(uint64(n))
}

func (c *dirCounters) snapshot() DirStats {
	return DirStats{
		Datagrams:        c.datagrams.Load(),
		Bytes:            c.bytes.Load(),
		DroppedDatagrams: c.droppedDatagrams.Load(),
		DroppedBytes:     c.droppedBytes.Load(),
		TCPBytes:         c.tcpBytes.Load(),
	}
}

// Relay forwards UDP datagrams and TCP streams from its listen address to
// its Target with added delay and loss. Its methods are safe for concurrent
// use.
type Relay struct {
	cfg       Config
	udpTarget *net.UDPAddr
	udpLn     *net.UDPConn     // nil when UDP is not relayed
	tcpLn     *net.TCPListener // nil when TCP is not relayed
	addr      string

	delay atomic.Int64  // time.Duration
	loss  atomic.Uint64 // math.Float64bits of the drop probability
	cut   atomic.Bool
	// cutFrom holds client IPs whose UDP datagrams are dropped both ways
	// (CutFrom); nil when none.
	cutFrom atomic.Pointer[map[netip.Addr]bool]

	// rng serves Loss and Jitter draws; one source for the whole relay so
	// that a single Seed reproduces a run.
	rngMu sync.Mutex
	rng   *rand.Rand

	toTarget, toClient dirCounters
	tcpAccepted        atomic.Uint64
	tcpRefused         atomic.Uint64

	// ctx is cancelled by Close so that pending TCP dials give up at once.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed by Close

	mu        sync.Mutex
	closed    bool
	flows     map[netip.AddrPort]*udpFlow
	pipes     map[*tcpPipe]struct{}
	tcpActive int // accepted connections not yet closed, dialing or piped

	wg        sync.WaitGroup
	live      atomic.Int64 // goroutines running; tests check it drops to 0
	closeOnce sync.Once
	closeErr  error
}

// Start binds the listen address and begins relaying. The caller must call
// Close to release the sockets and goroutines.
func Start(cfg Config) (*Relay, error) {
	if cfg.Target == "" {
		return nil, errors.New("netrelay: empty Target")
	}
	if cfg.Delay < 0 || cfg.Jitter < 0 {
		return nil, errors.New("netrelay: negative Delay or Jitter")
	}
	if !(cfg.Loss >= 0 && cfg.Loss <= 1) { // also rejects NaN
		return nil, fmt.Errorf("netrelay: Loss %v not in [0, 1]", cfg.Loss)
	}
	if cfg.MaxFlows < 0 || cfg.MaxQueuedBytes < 0 {
		return nil, errors.New("netrelay: negative MaxFlows or MaxQueuedBytes")
	}
	if !cfg.UDP && !cfg.TCP {
		cfg.UDP, cfg.TCP = true, true
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.MaxFlows == 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	if cfg.MaxQueuedBytes == 0 {
		cfg.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if cfg.idleTimeout <= 0 {
		cfg.idleTimeout = DefaultUDPIdleTimeout
	}

	r := &Relay{
		cfg:   cfg,
		done:  make(chan struct{}),
		flows: make(map[netip.AddrPort]*udpFlow),
		pipes: make(map[*tcpPipe]struct{}),
		// PCG wants two words; deriving the second from the first keeps
		// Seed the only knob.
		rng: rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.Seed)^0x9e3779b97f4a7c15)),
	}
	r.delay.Store(int64(cfg.Delay))
	r.loss.Store(math.Float64bits(cfg.Loss))
	r.ctx, r.cancel = context.WithCancel(context.Background())

	if cfg.UDP {
		t, err := net.ResolveUDPAddr("udp", cfg.Target)
		if err != nil {
			r.cancel()
			return nil, fmt.Errorf("netrelay: target: %w", err)
		}
		r.udpTarget = t
	}
	if err := r.bind(); err != nil {
		r.cancel()
		return nil, err
	}

	if r.udpLn != nil {
		r.spawn(r.udpLoop)
		r.spawn(r.expireLoop)
	}
	if r.tcpLn != nil {
		r.spawn(r.acceptLoop)
	}
	return r, nil
}

// bind opens the listening sockets. With port 0 it lets TCP pick a port
// and then tries UDP on the same number, starting over if that one is taken
// for UDP: memberlist advertises a single port for both transports.
func (r *Relay) bind() error {
	host, portStr, err := net.SplitHostPort(r.cfg.Listen)
	if err != nil {
		return fmt.Errorf("netrelay: listen: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("netrelay: listen: bad port %q", portStr)
	}
	attempts := 1
	if port == 0 && r.cfg.UDP && r.cfg.TCP {
		attempts = bindAttempts
	}
	for i := 0; ; i++ {
		var tcpLn *net.TCPListener
		var udpLn *net.UDPConn
		addr := r.cfg.Listen
		if r.cfg.TCP {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("netrelay: listen tcp: %w", err)
			}
			tcpLn = l.(*net.TCPListener)
			addr = tcpLn.Addr().String()
		}
		if r.cfg.UDP {
			// Bind the port TCP chose, but keep the caller's host
			// spelling for the UDP side as well.
			_, p, _ := net.SplitHostPort(addr)
			c, err := net.ListenPacket("udp", net.JoinHostPort(host, p))
			if err != nil {
				if tcpLn != nil {
					tcpLn.Close()
				}
				if i+1 < attempts {
					continue
				}
				return fmt.Errorf("netrelay: listen udp: %w", err)
			}
			udpLn = c.(*net.UDPConn)
			addr = udpLn.LocalAddr().String()
		}
		r.tcpLn, r.udpLn, r.addr = tcpLn, udpLn, addr
		return nil
	}
}

// Addr returns the bound listen address as host:port. With both transports
// the port is the same for UDP and TCP.
func (r *Relay) Addr() string { return r.addr }

// SetDelay changes the one-way delay for packets and chunks that arrive from
// now on; those already queued keep their due time. A negative delay is
// treated as zero.
func (r *Relay) SetDelay(d time.Duration) {
	r.delay.Store(int64(max(d, 0)))
}

// SetLoss changes the UDP drop probability. Values outside [0, 1] are
// clamped and NaN is treated as zero, since a test helper that computes a
// probability should not be able to crash the relay.
func (r *Relay) SetLoss(p float64) {
	if !(p > 0) {
		p = 0
	}
	r.loss.Store(math.Float64bits(min(p, 1)))
}

// Cut partitions the link (cut true) or restores it (cut false). While cut,
// UDP datagrams are dropped in both directions, including those already
// queued when they come due; existing TCP connections are closed and new
// ones are accepted and closed at once, which peers see as a reset or EOF
// as they would when a real partition makes a stream fail. Restoring does
// not revive closed connections; clients must reconnect.
func (r *Relay) Cut(cut bool) {
	r.cut.Store(cut)
	if !cut {
		return
	}
	r.mu.Lock()
	pipes := make([]*tcpPipe, 0, len(r.pipes))
	for p := range r.pipes {
		pipes = append(pipes, p)
	}
	r.mu.Unlock()
	for _, p := range pipes {
		p.close()
	}
}

// CutFrom partitions (cut true) or restores the UDP traffic of clients at
// ip, both ways, leaving others' alone: a relay in front of region A cuts
// region B off from A while C still reaches A. TCP is not affected.
func (r *Relay) CutFrom(ip netip.Addr, cut bool) {
	for {
		old := r.cutFrom.Load()
		next := map[netip.Addr]bool{}
		if old != nil {
			for a := range *old {
				next[a] = true
			}
		}
		if cut {
			next[ip] = true
		} else {
			delete(next, ip)
		}
		if r.cutFrom.CompareAndSwap(old, &next) {
			return
		}
	}
}

// cutOff reports whether client's traffic is cut (CutFrom).
func (r *Relay) cutOff(client netip.AddrPort) bool {
	m := r.cutFrom.Load()
	return m != nil && (*m)[client.Addr().Unmap()]
}

// Stats returns a snapshot of the relay's counters.
func (r *Relay) Stats() Stats {
	r.mu.Lock()
	flows, active := len(r.flows), r.tcpActive
	r.mu.Unlock()
	return Stats{
		ToTarget:    r.toTarget.snapshot(),
		ToClient:    r.toClient.snapshot(),
		UDPFlows:    flows,
		TCPActive:   active,
		TCPAccepted: r.tcpAccepted.Load(),
		TCPRefused:  r.tcpRefused.Load(),
	}
}

// Close stops the relay: it closes the listeners, every flow's socket and
// every TCP connection, discards queued data, and waits for all of the
// relay's goroutines to exit. It is safe to call more than once; later
// calls return the first call's result.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		flows := make([]*udpFlow, 0, len(r.flows))
		for _, f := range r.flows {
			flows = append(flows, f)
		}
		pipes := make([]*tcpPipe, 0, len(r.pipes))
		for p := range r.pipes {
			pipes = append(pipes, p)
		}
		r.mu.Unlock()

		close(r.done)
		r.cancel()
		var errs []error
		if r.udpLn != nil {
			errs = append(errs, r.udpLn.Close())
		}
		if r.tcpLn != nil {
			errs = append(errs, r.tcpLn.Close())
		}
		for _, f := range flows {
			f.close()
		}
		for _, p := range pipes {
			p.close()
		}
		r.wg.Wait()
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}

// spawn runs fn on a goroutine that Close waits for.
func (r *Relay) spawn(fn func()) {
	r.wg.Add(1)
	r.live.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.live.Add(-1)
		fn()
	}()
}

// isClosed reports whether Close has begun.
func (r *Relay) isClosed() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// retry reports whether a read or accept loop goes on after err: not once
// the relay or the socket is closed; otherwise after a brief pause, so that
// a persistent error cannot turn the loop into a busy loop.
func (r *Relay) retry(err error) bool {
	if r.isClosed() || errors.Is(err, net.ErrClosed) {
		return false
	}
	t := time.NewTimer(5 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.done:
		return false
	}
}

// loses reports whether a datagram to or from client is dropped: the link
// or the client's traffic is cut, or random loss takes it.
func (r *Relay) loses(client netip.AddrPort) bool {
	return r.cut.Load() || r.cutOff(client) || r.dropUDP()
}

// queue delays a copy of b toward q's side (counted in c if q is full).
func (f *udpFlow) queue(q *delayQueue, c *dirCounters, b []byte) {
	f.touch()
	if !q.push(packet{data: append([]byte(nil), b...)}, f.r.lag(), false) {
		c.dropped(len(b))
	}
}

// dropUDP decides whether a datagram is lost.
func (r *Relay) dropUDP() bool {
	p := math.Float64frombits(r.loss.Load())
	if p <= 0 {
		return false
	}
	if p >= 1 {
		return true
	}
	r.rngMu.Lock()
	defer r.rngMu.Unlock()
	return r.rng.Float64() < p
}

// lag returns the delay for the next packet or chunk, jitter included.
func (r *Relay) lag() time.Duration {
	d := time.Duration(r.delay.Load())
	if j := r.cfg.Jitter; j > 0 {
		r.rngMu.Lock()
		d += time.Duration(r.rng.Int64N(int64(j)))
		r.rngMu.Unlock()
	}
	return d
}

// packet is one datagram or stream chunk on its way through a delayQueue.
type packet struct {
	due  time.Time
	data []byte
	eof  bool // TCP only: the source half-closed after the preceding data
}

// delayQueue holds packets of one flow and direction until they are due.
// One goroutine drains it (run); one goroutine at a time pushes into it.
type delayQueue struct {
	max   int
	ready chan struct{} // capacity 1: something was pushed
	space chan struct{} // capacity 1: something was popped
	stop  chan struct{} // closed by close

	mu      sync.Mutex
	items   []packet
	bytes   int
	lastDue time.Time
	closed  bool
}

func newDelayQueue(limit int) *delayQueue {
	return &delayQueue{
		max:   limit,
		ready: make(chan struct{}, 1),
		space: make(chan struct{}, 1),
		stop:  make(chan struct{}),
	}
}

// push queues data to be released after lag. If the queue has no room it
// either drops the packet (wait false, as UDP does) or waits for room (wait
// true, as TCP does, which is what pauses the TCP reader). The due time is
// taken when the packet enters the queue, so time spent waiting for room
// counts as queueing delay, not link delay. It reports whether the packet
// was queued.
func (q *delayQueue) push(p packet, lag time.Duration, wait bool) bool {
	q.mu.Lock()
	for {
		if q.closed {
			q.mu.Unlock()
			return false
		}
		if q.bytes == 0 || q.bytes+len(p.data) <= q.max {
			break
		}
		q.mu.Unlock()
		if !wait {
			return false
		}
		select {
		case <-q.space:
		case <-q.stop:
			return false
		}
		q.mu.Lock()
	}
	p.due = time.Now().Add(lag)
	// Never release before the packet ahead: jitter must not reorder.
	if p.due.Before(q.lastDue) {
		p.due = q.lastDue
	}
	q.lastDue = p.due
	q.items = append(q.items, p)
	q.bytes += len(p.data)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return true
}

// run releases packets in order as they come due, calling deliver for
// each, until the queue is closed. A packet still counts against max while
// it waits, since that is the memory the bound exists to limit.
func (q *delayQueue) run(deliver func(packet)) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return
		}
		if len(q.items) == 0 {
			q.mu.Unlock()
			select {
			case <-q.ready:
				continue
			case <-q.stop:
				return
			}
		}
		// Only this goroutine removes items, so the head stays put while
		// we sleep without the lock.
		p := q.items[0]
		q.mu.Unlock()
		if d := time.Until(p.due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-q.stop:
				return
			}
		}
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return
		}
		q.items[0] = packet{} // let the payload be collected
		q.items = q.items[1:]
		q.bytes -= len(p.data)
		q.mu.Unlock()
		select {
		case q.space <- struct{}{}:
		default:
		}
		deliver(p)
	}
}

// close discards queued packets and stops run and any waiting push.
func (q *delayQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed = true
	q.items = nil
	q.bytes = 0
	close(q.stop)
}

// udpFlow is the relay's state for one UDP client address.
type udpFlow struct {
	r        *Relay
	client   netip.AddrPort
	up       *net.UDPConn // connected to the Target; its replies are this client's
	toTarget *delayQueue
	toClient *delayQueue
	// lastActive is when traffic last passed in either direction, as
	// nanoseconds since lastActiveBase; monotonic, unlike wall time.
	lastActive atomic.Int64
	closeOnce  sync.Once
}

// lastActiveBase anchors udpFlow.lastActive on the monotonic clock.
var lastActiveBase = time.Now()

func (f *udpFlow) touch() { f.lastActive.Store(int64(time.Since(lastActiveBase))) }

func (f *udpFlow) idleFor() time.Duration {
	return time.Since(lastActiveBase) - time.Duration(f.lastActive.Load())
}

// close releases the flow's socket and queues; its goroutines then exit.
func (f *udpFlow) close() {
	f.closeOnce.Do(func() {
		f.up.Close()
		f.toTarget.close()
		f.toClient.close()
	})
}

// udpLoop reads datagrams from clients and queues them toward the Target.
func (r *Relay) udpLoop() {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := r.udpLn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !r.retry(err) {
				return
			}
			continue
		}
		if r.loses(from) {
			r.toTarget.dropped(n)
			continue
		}
		f := r.flow(from)
		if f == nil {
			r.toTarget.dropped(n)
			continue
		}
		f.queue(f.toTarget, &r.toTarget, buf[:n])
	}
}

// flow returns the flow for a client address, creating it if needed. It
// returns nil if the relay is closing, MaxFlows flows exist, or no upstream
// socket can be opened.
func (r *Relay) flow(client netip.AddrPort) *udpFlow {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f, ok := r.flows[client]; ok {
		return f
	}
	if r.closed || len(r.flows) >= r.cfg.MaxFlows {
		return nil
	}
	up, err := net.DialUDP("udp", nil, r.udpTarget)
	if err != nil {
		return nil
	}
	f := &udpFlow{
		r:        r,
		client:   client,
		up:       up,
		toTarget: newDelayQueue(r.cfg.MaxQueuedBytes),
		toClient: newDelayQueue(r.cfg.MaxQueuedBytes),
	}
	f.touch()
	r.flows[client] = f
	r.spawn(func() { f.toTarget.run(f.deliverToTarget) })
	r.spawn(func() { f.toClient.run(f.deliverToClient) })
	r.spawn(f.readUpstream)
	return f
}

func (f *udpFlow) deliverToTarget(p packet) {
	r := f.r
	if r.cut.Load() {
		r.toTarget.dropped(len(p.data))
		return
	}
	if _, err := f.up.Write(p.data); err != nil {
		r.toTarget.dropped(len(p.data))
		return
	}
	r.toTarget.delivered(len(p.data))
}

func (f *udpFlow) deliverToClient(p packet) {
	r := f.r
	if r.cut.Load() {
		r.toClient.dropped(len(p.data))
		return
	}
	if _, err := r.udpLn.WriteToUDPAddrPort(p.data, f.client); err != nil {
		r.toClient.dropped(len(p.data))
		return
	}
	r.toClient.delivered(len(p.data))
}

// readUpstream reads the Target's replies to this flow and queues them
// toward the client.
func (f *udpFlow) readUpstream() {
	r := f.r
	buf := make([]byte, maxDatagram)
	for {
		n, err := f.up.Read(buf)
		if err != nil {
			// A connected UDP socket reports an ICMP port-unreachable
			// from an earlier send as ECONNREFUSED on the next read; the
			// Target may simply not be up yet, so keep the flow.
			if !r.retry(err) {
				return
			}
			continue
		}
		if r.loses(f.client) {
			r.toClient.dropped(n)
			continue
		}
		f.queue(f.toClient, &r.toClient, buf[:n])
	}
}

// expireLoop closes flows that have been idle for the idle timeout, so
// that clients that came and went do not pin sockets and goroutines.
func (r *Relay) expireLoop() {
	idle := r.cfg.idleTimeout
	tick := time.NewTicker(max(idle/4, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-r.done:
			return
		}
		var expired []*udpFlow
		r.mu.Lock()
		for k, f := range r.flows {
			if f.idleFor() >= idle {
				delete(r.flows, k)
				expired = append(expired, f)
			}
		}
		r.mu.Unlock()
		for _, f := range expired {
			f.close()
		}
	}
}

// tcpPipe is one relayed TCP connection: the accepted client side, the
// dialed Target side, and a delay queue for each direction.
type tcpPipe struct {
	r              *Relay
	client, server *net.TCPConn
	toTarget       *delayQueue
	toClient       *delayQueue
	halfClosed     atomic.Int32 // directions whose EOF has been delivered
	closeOnce      sync.Once
}

// acceptLoop accepts TCP connections and hands each to handleTCP.
func (r *Relay) acceptLoop() {
	for {
		c, err := r.tcpLn.AcceptTCP()
		if err != nil {
			// Typically EMFILE; back off rather than spin.
			if !r.retry(err) {
				return
			}
			continue
		}
		if r.cut.Load() {
			c.Close()
			r.tcpRefused.Add(1)
			continue
		}
		r.mu.Lock()
		ok := !r.closed && r.tcpActive < r.cfg.MaxFlows
		if ok {
			r.tcpActive++
		}
		r.mu.Unlock()
		if !ok {
			c.Close()
			r.tcpRefused.Add(1)
			continue
		}
		r.spawn(func() { r.handleTCP(c) })
	}
}

// handleTCP dials the Target for an accepted connection and relays it.
// Dialing happens here rather than in acceptLoop so that a slow Target
// cannot stall other connections.
func (r *Relay) handleTCP(client *net.TCPConn) {
	d := net.Dialer{Timeout: dialTimeout}
	sc, err := d.DialContext(r.ctx, "tcp", r.cfg.Target)
	if err != nil {
		client.Close()
		r.tcpRefused.Add(1)
		r.releaseTCP()
		return
	}
	p := &tcpPipe{
		r:        r,
		client:   client,
		server:   sc.(*net.TCPConn),
		toTarget: newDelayQueue(r.cfg.MaxQueuedBytes),
		toClient: newDelayQueue(r.cfg.MaxQueuedBytes),
	}
	r.mu.Lock()
	// Re-check under the lock: a Cut or Close that ran while we dialed
	// did not see this pipe and so could not close it.
	ok := !r.closed && !r.cut.Load()
	if ok {
		r.pipes[p] = struct{}{}
	}
	r.mu.Unlock()
	if !ok {
		client.Close()
		p.server.Close()
		r.tcpRefused.Add(1)
		r.releaseTCP()
		return
	}
	r.tcpAccepted.Add(1)
	r.spawn(func() { p.pump(p.client, p.toTarget) })
	r.spawn(func() { p.pump(p.server, p.toClient) })
	r.spawn(func() { p.toTarget.run(p.deliverer(p.server, &r.toTarget)) })
	p.toClient.run(p.deliverer(p.client, &r.toClient))
}

// releaseTCP returns a connection's slot under MaxFlows.
func (r *Relay) releaseTCP() {
	r.mu.Lock()
	r.tcpActive--
	r.mu.Unlock()
}

// pump reads src in chunks and queues them, waiting for room when the
// queue is full. At EOF it queues a marker so the half-close reaches the
// other side after the same delay as the data before it.
func (p *tcpPipe) pump(src *net.TCPConn, q *delayQueue) {
	buf := make([]byte, min(tcpChunk, p.r.cfg.MaxQueuedBytes))
	for {
		n, err := src.Read(buf)
		if n > 0 {
			// Copy out exactly n bytes: queueing a slice of a
			// chunk-sized buffer would pin the whole buffer, and a
			// stream of tiny writes would then hold far more memory
			// than MaxQueuedBytes accounts for.
			data := append([]byte(nil), buf[:n]...)
			if !q.push(packet{data: data}, p.r.lag(), true) {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				q.push(packet{eof: true}, p.r.lag(), true)
				return
			}
			p.close()
			return
		}
	}
}

// deliverer returns the function that writes released chunks to dst.
func (p *tcpPipe) deliverer(dst *net.TCPConn, c *dirCounters) func(packet) {
	return func(pk packet) {
		if pk.eof {
			// Propagate the half-close: memberlist's push/pull writes
			// its state, then reads the reply.
			if err := dst.CloseWrite(); err != nil || p.halfClosed.Add(1) == 2 {
				p.close()
			}
			return
		}
		if _, err := dst.Write(pk.data); err != nil {
			p.close()
			return
		}
		c.tcpBytes.Add(uint64(len(pk.data)))
	}
}

// close tears the connection down in both directions. Closing the sockets
// unblocks the pumps' reads and the deliverers' writes, and closing the
// queues unblocks everything else.
func (p *tcpPipe) close() {
	p.closeOnce.Do(func() {
		p.client.Close()
		p.server.Close()
		p.toTarget.close()
		p.toClient.close()
		r := p.r
		r.mu.Lock()
		delete(r.pipes, p)
		r.tcpActive--
		r.mu.Unlock()
	})
}
