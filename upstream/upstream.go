// Package upstream is an edge's view of the cores: a Backend for the HTTP
// API (package httpapi) that serves every request by calling a core over
// the QUIC transport (package itemrpc), and feeds the changes the cores
// push to the edge's cache (package edge).
//
// With Config.Route (an edge) a request about an item goes to its
// partition's leader, as the topology the cores push says (routes.go);
// otherwise, and when the leader is unknown or fails, it goes to the core
// that answered last, moving to the next configured address when a core
// is unreachable and skipping one that just failed for a second. With
// Config.ProbeInterval it measures each core's round trip and starts with
// the nearest healthy one (probe.go).
//
// Freshness. A subscribed core pushes at least every wire.FeedHeartbeat.
// A core killed or cut off pushes nothing and says nothing, and QUIC
// notices only at its idle timeout (seconds); meanwhile the cache would
// serve as fresh what others may have rewritten. So the Backend holds each
// feed on a lease (Config.FeedLease): a feed silent for longer makes the
// cache distrust everything it holds, and the core is skipped and its
// connection closed, so calls waiting on it fail over at once.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/internal/query"
	"github.com/soullabs/brainy/internal/wire"
	"github.com/soullabs/brainy/itemrpc"
	"github.com/soullabs/brainy/transport"
)

// DefaultCallTimeout is Config.CallTimeout when zero.
const DefaultCallTimeout = 5 * time.Second

// DefaultFeedLease is Config.FeedLease when zero: five heartbeats.
const DefaultFeedLease = 5 * wire.FeedHeartbeat

// Config configures a Backend.
type Config struct {
	// Addrs are the cores' transport addresses (host:port). Required.
	Addrs []string
	// Client carries the calls. Required; the Backend does not close it.
	Client *transport.Client
	// CallTimeout bounds one call to one core. Default 5 s.
	CallTimeout time.Duration
	// Logger receives failovers between cores. Nil discards them.
	Logger *slog.Logger
	// Forwarded marks every request as forwarded by a core (one hop): the
	// receiving core answers from its own replicas. Cores forwarding for
	// each other set it; edges do not.
	Forwarded bool
	// Coalesce sends requests about one item (get, add, put, patch,
	// delete) through Client.CallCoalesced: while two are on the wire to a
	// core, the next ones wait and go together in one frame. For many
	// small concurrent requests to few cores, such as one core forwarding
	// writes to another; a request alone goes at once.
	Coalesce bool
	// OnChanges, when set, receives the items the cores changed, pushed
	// after every commit: the way a cache learns what to drop. reset is
	// true when changes may have been missed (a new or re-established
	// connection, a subscriber that fell behind): everything cached from
	// that core must then be treated as stale. It is called from transport
	// goroutines, concurrently, and must not block for long.
	OnChanges func(changes []wire.Change, reset bool)
	// Route sends each request about an item to its partition's leader,
	// as the topology the cores push says (routes.go), instead of to the
	// core that answered last, which would forward it. Like OnChanges it
	// subscribes to every core connected to and handles the Client's
	// pushes: the Client must be this Backend's alone.
	Route bool
	// ProbeInterval, when not zero, is how often every known core is
	// pinged to measure its round trip (probe.go): requests that no leader
	// claims start at the nearest healthy core, and Metrics reports each
	// core's RTT. Edges use DefaultProbeInterval (1 s).
	ProbeInterval time.Duration
	// FeedLease is how long a core's change feed is trusted without a push
	// (changes or a heartbeat). Past it OnChanges gets a reset, the core is
	// skipped for a second and its connection closed. Only with OnChanges;
	// default DefaultFeedLease (500 ms). It must exceed wire.FeedHeartbeat
	// by the pushes' round trip, or healthy feeds lapse.
	FeedLease time.Duration
}

// Backend serves item requests from the cores: the item operations are
// itemrpc.Remote's, sent through call, which picks the core.
type Backend struct {
	itemrpc.Remote
	cfg     Config
	log     *slog.Logger
	current atomic.Int32 // index in Addrs of the core that last answered
	healthy atomic.Bool
	calls   atomic.Uint64
	fails   atomic.Uint64
	lapses  atomic.Uint64 // feeds that went silent
	// Stale reads sent to replicas, and the second requests hedging
	// sent for them (hedge.go).
	staleReads, hedges atomic.Uint64
	// Reads also sent elsewhere because their core's feed fell silent
	// (suspect.go).
	rescues atomic.Uint64
	noHedge bool // benchmarks' baseline
	// downUntil[i] is when Addrs[i] may be tried again after it failed
	// (Unix nanoseconds): while a core is down, requests skip it at once
	// instead of each waiting out a dial timeout.
	downUntil []atomic.Int64

	routes   atomic.Pointer[routes] // the chosen region's pushed topology, merged (routes.go); nil until one arrives
	routesMu sync.Mutex             // serializes merges and region choices
	// regions holds every region's merged topology, by region name ("":
	// cores outside a federation); guarded by routesMu. region is the one
	// requests go to (regions.go), and closer counts the probe rounds in a
	// row another region, candidate, was nearer by the margin.
	regions map[string]*routes
	others  map[string][]string // other regions' cores, as pushed (Topology.Others); guarded by routesMu
	region  atomic.Pointer[string]
	// regionCount is len(regions), read without the lock on every request.
	regionCount atomic.Int32
	closer      int
	candidate   string

	rttMu sync.Mutex
	rtts  map[string]*rtt // by core address; guarded by rttMu (probe.go)
	reads map[string]*rtt // stale reads' times by core address; guarded by rttMu (hedge.go)

	feedMu sync.Mutex
	feeds  map[string]int64 // subscribed core's address → when last heard from (Unix nanoseconds)
	stop   chan struct{}
	done   sync.WaitGroup
}

// retryDown is how long a core that did not answer is skipped.
const retryDown = time.Second

// New returns a Backend.
func New(cfg Config) (*Backend, error) {
	if len(cfg.Addrs) == 0 || cfg.Client == nil {
		return nil, errors.New("upstream: Addrs and Client are required")
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.FeedLease == 0 {
		cfg.FeedLease = DefaultFeedLease
	}
	if cfg.FeedLease <= wire.FeedHeartbeat {
		return nil, fmt.Errorf("upstream: FeedLease %v must exceed the cores' heartbeat, %v", cfg.FeedLease, wire.FeedHeartbeat)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnChanges == nil && cfg.Route {
		cfg.OnChanges = func([]wire.Change, bool) {} // subscribed for the topology only
	}
	b := &Backend{cfg: cfg, log: cfg.Logger.With("component", "upstream"), downUntil: make([]atomic.Int64, len(cfg.Addrs)),
		feeds: map[string]int64{}, stop: make(chan struct{}), rtts: map[string]*rtt{}, reads: map[string]*rtt{},
		regions: map[string]*routes{}, others: map[string][]string{}}
	b.Remote = itemrpc.Remote{Call: b.call, Forwarded: cfg.Forwarded}
	b.healthy.Store(true)
	if cfg.OnChanges != nil {
		cfg.Client.OnConnect(b.subscribe)
		cfg.Client.OnPush(b.push)
		// Without a connection no changes arrive: nothing cached can be
		// trusted as fresh until the next subscription.
		cfg.Client.OnDisconnect(func(addr string) {
			b.feedMu.Lock()
			delete(b.feeds, addr)
			b.feedMu.Unlock()
			cfg.OnChanges(nil, true)
		})
		b.done.Add(1)
		go b.watchFeeds()
	}
	if cfg.ProbeInterval > 0 {
		b.done.Add(1)
		go b.probeLoop()
	}
	return b, nil
}

// Close stops the Backend's feed watchdog. It does not close the Client.
func (b *Backend) Close() {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	b.done.Wait()
}

// subscribe asks a newly connected core for its changes. Whatever changed
// while there was no connection is unknown, hence the reset. The feed's
// lease starts now, whether or not the call succeeded: a feed that never
// pushes lapses, and the next connection subscribes again.
func (b *Backend) subscribe(addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CallTimeout)
	defer cancel()
	b.heard(addr)
	if _, err := b.cfg.Client.Call(ctx, addr, wire.MethodSubscribe, nil); err != nil {
		b.log.Warn("subscribing to changes failed", "addr", addr, "err", err)
	}
	b.heard(addr)
	b.cfg.OnChanges(nil, true)
}

// heard renews addr's feed lease.
func (b *Backend) heard(addr string) {
	now := time.Now().UnixNano()
	b.feedMu.Lock()
	b.feeds[addr] = now
	b.feedMu.Unlock()
}

// watchFeeds ends the feeds whose lease lapsed, checking five times a
// lease.
func (b *Backend) watchFeeds() {
	defer b.done.Done()
	tick := time.NewTicker(b.cfg.FeedLease / 5)
	defer tick.Stop()
	var lapsed []string
	for {
		select {
		case <-b.stop:
			return
		case <-tick.C:
		}
		cutoff := time.Now().Add(-b.cfg.FeedLease).UnixNano()
		lapsed = lapsed[:0]
		b.feedMu.Lock()
		for addr, last := range b.feeds {
			if last < cutoff {
				lapsed = append(lapsed, addr)
				delete(b.feeds, addr)
			}
		}
		b.feedMu.Unlock()
		for _, addr := range lapsed {
			b.feedLapsed(addr)
		}
	}
}

// feedLapsed gives up on a core whose feed went silent: the cache stops
// trusting what it holds (the core may have died after others committed
// writes it never pushed), the core is skipped like one that failed a
// call, and its connection is closed, so calls waiting on it fail over now
// rather than at CallTimeout. A core that is merely slow is connected to
// and subscribed to again by the next call that picks it.
func (b *Backend) feedLapsed(addr string) {
	b.lapses.Add(1)
	b.log.Warn("core's change feed went silent; cached answers are no longer trusted", "addr", addr, "lease", b.cfg.FeedLease)
	b.cfg.OnChanges(nil, true)
	b.markDown(addr, time.Now().Add(retryDown).UnixNano())
	b.pickRegion() // the region may have no core left: move now, not at the next probe
	b.cfg.Client.Disconnect(addr)
}

func (b *Backend) push(_ context.Context, addr string, method uint16, msg []byte) error {
	if method == wire.MethodTopology {
		b.heard(addr)
		if !b.cfg.Route {
			return nil
		}
		t, err := wire.DecodeTopology(msg)
		if err != nil {
			b.log.Warn("malformed topology push", "addr", addr, "err", err)
			return err
		}
		b.learn(t, addr)
		return nil
	}
	if method != wire.MethodInvalidate {
		return fmt.Errorf("upstream: unexpected push method %d", method)
	}
	b.heard(addr)
	changes, lost, err := wire.DecodeChanges(msg)
	if err != nil {
		b.log.Warn("malformed change push", "addr", addr, "err", err)
		b.cfg.OnChanges(nil, true)
		return err
	}
	b.cfg.OnChanges(changes, lost)
	return nil
}

// call sends one encoded request: first to the leader of its target's
// partition when the pushed topology names one (routes.go), then to the
// configured cores in turn, starting with the one that answered last. A
// core's own answer, error or not, is final (a *transport.RemoteError,
// which itemrpc.Remote decodes). Only a request that provably never
// reached a core (transport.ErrNotSent) moves on to the next; a read may
// move on after any failure, since reading twice is harmless, but a write
// that may have been delivered is never sent again: its caller gets
// item.ErrOutcomeUnknown. A frame too large is the request's fault, not
// the core's: it fails that request only.
func (b *Backend) call(ctx context.Context, method uint16, to itemrpc.Target, req []byte) ([]byte, error) {
	var lastErr error
	now := time.Now().UnixNano()
	if item.StaleReads(ctx) && wire.Idempotent(method) {
		if reps := b.replicasOf(to, now); len(reps) > 0 {
			out, err, final := b.hedged(ctx, reps, method, req)
			if final {
				return out, err
			}
			lastErr = err
		}
	}
	leader, down := b.leaderOf(to)
	if leader != "" && down.Load() <= now && !b.suspect(leader, now) {
		var out []byte
		var err error
		var final bool
		if wire.Idempotent(method) && b.multiRegion() {
			out, err, final = b.watched(ctx, routeNode{leader, down}, func() []routeNode {
				return b.elsewhere(to, leader, time.Now().UnixNano())
			}, method, req)
		} else {
			out, err, final = b.try(ctx, leader, down, method, req)
		}
		if final {
			return out, err
		}
		lastErr = err
	}
	if leader != "" {
		// The leader is down or did not answer: the region's other cores,
		// or other regions', nearest first.
		for _, n := range b.elsewhere(to, leader, time.Now().UnixNano()) {
			out, err, final := b.try(ctx, n.addr, n.down, method, req)
			if final {
				return out, err
			}
			lastErr = err
		}
	}
	start := int(b.current.Load())
	for i := range b.cfg.Addrs {
		idx := (start + i) % len(b.cfg.Addrs)
		if b.cfg.Addrs[idx] == leader && leader != "" {
			continue // tried above
		}
		if b.downUntil[idx].Load() > now {
			lastErr = errors.New("recently unreachable")
			continue
		}
		out, err, final := b.try(ctx, b.cfg.Addrs[idx], &b.downUntil[idx], method, req)
		if final {
			if answered(err) {
				b.current.Store(int32(idx))
			}
			return out, err
		}
		lastErr = err
	}
	b.healthy.Store(false)
	return nil, fmt.Errorf("%w: no core answered: %v", item.ErrUnavailable, lastErr)
}

// answered reports whether a call's error is the core's own answer.
func answered(err error) bool {
	var re *transport.RemoteError
	return err == nil || errors.As(err, &re)
}

// try sends one request to the core at addr, whose skip-until time is
// down. final reports that the outcome is the request's: an answer, or a
// failure after which no other core may be tried.
func (b *Backend) try(ctx context.Context, addr string, down *atomic.Int64, method uint16, req []byte) (out []byte, err error, final bool) {
	cctx, cancel := context.WithTimeout(ctx, b.cfg.CallTimeout)
	if b.cfg.Coalesce && oneItem(method) {
		out, err = b.cfg.Client.CallCoalesced(cctx, addr, method, req)
	} else {
		out, err = b.cfg.Client.Call(cctx, addr, method, req)
	}
	cancel()
	b.calls.Add(1)
	switch {
	case answered(err):
		down.Store(0)
		b.healthy.Store(true)
		return out, err, true
	case errors.Is(err, transport.ErrFrameTooLarge):
		return nil, fmt.Errorf("%w: the request or its answer exceeds the transport's frame limit: %v", item.ErrUnavailable, err), true
	case ctx.Err() != nil && errors.Is(err, transport.ErrNotSent):
		return nil, ctx.Err(), true
	case ctx.Err() != nil && !wire.Idempotent(method):
		return nil, fmt.Errorf("%w: %v", item.ErrOutcomeUnknown, ctx.Err()), true
	case ctx.Err() != nil:
		return nil, ctx.Err(), true
	}
	b.fails.Add(1)
	down.Store(time.Now().Add(retryDown).UnixNano())
	b.log.Warn("core unreachable", "addr", addr, "err", err)
	if !errors.Is(err, transport.ErrNotSent) && !wire.Idempotent(method) {
		return nil, fmt.Errorf("%w: %s did not answer: %v", item.ErrOutcomeUnknown, addr, err), true
	}
	return nil, err, false
}

// oneItem reports whether method is about one item (Config.Coalesce).
func oneItem(method uint16) bool {
	switch method {
	case wire.MethodGet, wire.MethodAdd, wire.MethodPut, wire.MethodPatch, wire.MethodDelete:
		return true
	}
	return false
}

// Metrics implements httpapi.Backend: the edge's view, one entry per core.
func (b *Backend) Metrics() nodestats.Snapshot {
	cur := int(b.current.Load())
	s := nodestats.Snapshot{Replication: nodestats.Replication{Mode: "upstream", FeedLapses: b.lapses.Load()}}
	for i, a := range b.cfg.Addrs {
		up := i == cur && b.healthy.Load()
		s.Nodes.List = append(s.Nodes.List, nodestats.Node{ID: a, Role: "core", Address: a, Healthy: up, RTTMs: b.rttOf(a)})
		s.Nodes.Total++
		if up {
			s.Nodes.Healthy++
		}
	}
	s.Operations.Errors = b.fails.Load()
	s.Routing = b.routing()
	return s
}

// Healthy implements httpapi.Backend: false once every core failed to answer,
// until one answers again.
func (b *Backend) Healthy() bool { return b.healthy.Load() }

// Find runs a find (the JSON body of POST /v1/find) on a core, asking it
// to answer within four fifths of CallTimeout: a find that would take
// longer comes back partial (or as the core's error), in time, and never
// looks like a core that stopped answering.
func (b *Backend) Find(ctx context.Context, tenant string, raw []byte) (*query.Result, error) {
	return b.Remote.Find(ctx, tenant, raw, b.cfg.CallTimeout*4/5)
}
