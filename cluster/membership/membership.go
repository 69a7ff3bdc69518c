package membership

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/soullabs/brainy/internal/shrink"
)

// State is a member's health as this node sees it.
type State int

const (
	// StateAlive: the member answers probes.
	StateAlive State = iota
	// StateSuspect: the member missed a probe and has not refuted yet.
	StateSuspect
	// StateDead: the cluster declared the member failed.
	StateDead
	// StateLeft: the member left gracefully (Leave).
	StateLeft
)

func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateSuspect:
		return "suspect"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Member is one node of the cluster.
type Member struct {
	// Meta is what the member announced. Meta.ID is its memberlist name even
	// if its metadata failed to decode.
	Meta Meta
	// Addr is the member's gossip host:port.
	Addr string
	// State is its health.
	State State
}

// EventType says what happened to a member.
type EventType int

const (
	// EventJoin: a member appeared (or came back after dying).
	EventJoin EventType = iota
	// EventLeave: a member died or left; Member.State says which.
	EventLeave
	// EventUpdate: a member's Meta or State changed (including the local
	// suspicion raised and cleared by NotifyUnreachable).
	EventUpdate
)

func (t EventType) String() string {
	switch t {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventUpdate:
		return "update"
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

// Event is a change of membership.
type Event struct {
	Type   EventType
	Member Member
}

// Membership is this node's view of the cluster. All methods are safe for
// concurrent use.
type Membership struct {
	cfg Config
	log *slog.Logger
	ml  *memberlist.Memberlist
	tr  *transport
	dis *discoverer

	// localAddr is the advertised gossip host:port, fixed at Start.
	localAddr string

	// mu guards members and stopped.
	mu sync.Mutex
	// stopped is set with stop closed; no background goroutine may start
	// after it (Shutdown waits for them).
	stopped bool
	// members holds every member memberlist told us of, dead and left ones
	// until DeadRetention after they went. Invariant: keyed by Meta.ID,
	// which equals the memberlist node name.
	members map[string]*entry
	// peaks are the most entries members and leaving held since they
	// were made (shrink.Map).
	peaks [2]int
	// leaving records the leave intents received, by member ID: memberlist
	// reports a member that left and one that died alike (its Node.State is
	// never set), so, as in Serf, a leaving member first gossips its intent
	// and NotifyLeave consults this to tell StateLeft from StateDead.
	leaving map[string]time.Time
	// reaped is when reapLocked last ran.
	reaped time.Time

	// bq queues this node's gossip: leave intents, its own and relayed.
	bq *memberlist.TransmitLimitedQueue

	events *eventQueue

	// pings counts the direct pings NotifyUnreachable finished, for tests.
	pings atomic.Int64

	// joinC carries addresses announced by beacons to the joiner goroutine.
	joinC chan string

	stop  chan struct{} // closed by Leave or Shutdown: stop discovery and beacons
	loops sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
}

// entry is a member and the bookkeeping around it.
type entry struct {
	m Member
	// gone is when the member died or left; zero while it is alive.
	gone time.Time
	// unreachable is set by NotifyUnreachable when a direct ping failed and
	// cleared by the next successful ping or memberlist event.
	unreachable bool
}

// Start creates the gossip listeners, starts memberlist and the discovery
// and beacon loops, and returns at once: joining happens in the
// background. ctx bounds Start alone, not the Membership's life; call
// Leave and then Shutdown to stop.
func Start(ctx context.Context, cfg Config) (*Membership, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lg := cfg.Logger.With("component", "membership", "node", cfg.Meta.ID)
	m := &Membership{
		cfg:     cfg,
		log:     lg,
		members: map[string]*entry{},
		leaving: map[string]time.Time{},
		events:  newEventQueue(),
		joinC:   make(chan string, 16),
		stop:    make(chan struct{}),
	}
	bindIP := net.ParseIP(cfg.BindAddr)
	if b4 := bindIP.To4(); b4 != nil {
		bindIP = b4
	}
	port := cfg.BindPort
	if port == AnyPort {
		port = 0
	}
	var bcastListen net.IP
	var bcastTo []net.IP
	if *cfg.Broadcast {
		if bindIP.IsLoopback() {
			lg.Warn("beacons are never sent on loopback; broadcast discovery is off", "bind", cfg.BindAddr)
		} else {
			var err error
			if bcastTo, err = broadcastAddrs(bindIP); err != nil {
				return nil, err
			}
			if len(bcastTo) == 0 {
				lg.Warn("no IPv4 broadcast address for the bind address; broadcast discovery is off", "bind", cfg.BindAddr)
			} else if !bindIP.IsUnspecified() {
				bcastListen = bcastTo[0]
			}
		}
	}
	tr, err := newTransport(bindIP, port, bcastListen, lg, m.onBeacon)
	if err != nil {
		m.events.close()
		return nil, err
	}
	m.tr = tr

	metaBytes, err := cfg.Meta.AppendEncode(nil)
	if err != nil {
		_ = tr.Shutdown()
		m.events.close()
		return nil, err
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.Meta.ID
	mc.Label = cfg.ClusterName
	mc.Transport = tr
	mc.BindAddr = bindIP.String()
	mc.BindPort = tr.port()
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = tr.port()
	}
	mc.ProbeInterval = cfg.ProbeInterval
	mc.ProbeTimeout = cfg.ProbeTimeout
	mc.SuspicionMult = cfg.SuspicionMult
	mc.SuspicionMaxTimeoutMult = cfg.SuspicionMaxTimeoutMult
	mc.IndirectChecks = cfg.IndirectChecks
	mc.GossipInterval = cfg.GossipInterval
	mc.GossipNodes = cfg.GossipNodes
	mc.PushPullInterval = cfg.PushPullInterval
	mc.GossipToTheDeadTime = cfg.DeadRetention
	mc.DeadNodeReclaimTime = cfg.DeadRetention
	mc.TCPTimeout = cfg.TCPTimeout
	mc.SecretKey = cfg.GossipKey
	// The queue sizes retransmission by the member count; it must not ask
	// m.ml, which memberlist's goroutines may reach before Create returns.
	m.bq = &memberlist.TransmitLimitedQueue{NumNodes: m.numKnownAlive, RetransmitMult: mc.RetransmitMult}
	mc.Delegate = &delegate{m: m, meta: metaBytes}
	mc.Events = (*eventDelegate)(m)
	mc.Logger = log.New(&logWriter{log: lg}, "", 0)
	ml, err := memberlist.Create(mc)
	if err != nil {
		_ = tr.Shutdown()
		m.events.close()
		return nil, fmt.Errorf("membership: start memberlist: %w", err)
	}
	m.ml = ml
	ln := ml.LocalNode()
	m.localAddr = net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))

	sources := make([]source, 0, len(cfg.Discover))
	for _, d := range cfg.Discover {
		s, _ := parseSource(d) // checked by Validate
		sources = append(sources, s)
	}
	m.dis = &discoverer{peers: cfg.Peers, sources: sources, resolver: cfg.Resolver, port: int(ln.Port)}
	if len(cfg.Peers) > 0 || len(sources) > 0 {
		m.loops.Add(1)
		go m.discoverLoop()
	}
	// joinLoop runs even without broadcast: a beacon may also arrive by
	// unicast, and then it is as good a hint as any.
	m.loops.Add(1)
	go m.joinLoop()
	if len(bcastTo) > 0 {
		m.loops.Add(1)
		go m.beaconLoop(bcastTo)
	}
	lg.Info("membership started", "addr", m.localAddr, "cluster", cfg.ClusterName,
		"peers", cfg.Peers, "discover", cfg.Discover, "broadcast", len(bcastTo) > 0,
		"encrypted", len(cfg.GossipKey) > 0)
	return m, nil
}

// LocalNode is this node as the others see it.
func (m *Membership) LocalNode() Member {
	return Member{Meta: m.cfg.Meta, Addr: m.localAddr, State: StateAlive}
}

// Members lists every member this node knows, itself included, sorted by
// ID: alive and suspect ones, and dead or left ones until DeadRetention
// after they went.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reapLocked(time.Now())
	out := make([]Member, 0, len(m.members))
	for _, e := range m.members {
		out = append(out, e.m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Meta.ID, b.Meta.ID) })
	return out
}

func (m *Membership) reapLocked(now time.Time) {
	m.reaped = now
	for id, e := range m.members {
		if !e.gone.IsZero() && now.Sub(e.gone) > m.cfg.DeadRetention {
			delete(m.members, id)
		}
	}
	// An intent whose leave message never came (the member changed its
	// mind, or the message was lost) must not make a later crash look
	// like a leave.
	for id, at := range m.leaving {
		if now.Sub(at) > m.cfg.DeadRetention {
			delete(m.leaving, id)
		}
	}
	// Once a wave of churn has passed, give its room back.
	m.members = shrink.Map(m.members, &m.peaks[0])
	m.leaving = shrink.Map(m.leaving, &m.peaks[1])
}

// reapSometimesLocked reaps at most once a second. The paths that add
// entries call it, so that the table stays bounded by the members gone
// within DeadRetention even when nobody calls Members.
func (m *Membership) reapSometimesLocked(now time.Time) {
	if now.Sub(m.reaped) >= time.Second {
		m.reapLocked(now)
	}
}

// numKnownAlive counts the members not dead or left, this node included.
func (m *Membership) numKnownAlive() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, e := range m.members {
		if e.gone.IsZero() {
			n++
		}
	}
	return n
}

// NumAlive is the number of alive members, this node included.
func (m *Membership) NumAlive() int { return m.ml.NumMembers() }

// Events returns the stream of membership changes, in the order memberlist
// reported them, starting with this node's own join. There is one stream
// per Membership: every call returns the same channel; it is closed by
// Shutdown.
//
// A reader never stalls gossip: events wait in a queue of at most
// MaxQueuedEvents, and when a reader falls further behind (or never
// reads) the oldest are dropped and counted by DroppedEvents. A dropped
// event is a change the reader did not hear of, not one that did not
// happen: Members is always the current view, so a reader that keeps its
// own copy of the membership converges by re-reading Members whenever
// DroppedEvents has grown.
func (m *Membership) Events() <-chan Event { return m.events.out }

// DroppedEvents counts the events dropped because the reader of Events was
// more than MaxQueuedEvents behind.
func (m *Membership) DroppedEvents() uint64 { return m.events.droppedCount() }

// NotifyUnreachable tells the failure detector that the transport lost its
// connection to member id, so that a crash is noticed without waiting for
// the member's turn in the probe rotation.
//
// memberlist offers no way to feed its failure detector from outside: the
// probe schedule, suspicion and the incarnation numbers that suspect
// messages need are all internal. The closest it offers is Ping, a direct
// probe of one node that returns as soon as the ack arrives or
// ProbeTimeout passes. So NotifyUnreachable pings id at once, in the
// background; if the ping goes unanswered the member is marked suspect in
// this node's view (Members and an EventUpdate) right away, and re-pinged
// every ProbeInterval until it answers (back to alive) or memberlist's own
// detector, which probes it on its regular turn, declares it dead. The
// local suspicion is not gossiped: only memberlist's decision is the
// cluster's.
func (m *Membership) NotifyUnreachable(id string) {
	if id == m.cfg.Meta.ID {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[id]
	if m.stopped || !ok || !e.gone.IsZero() || e.unreachable {
		return
	}
	addr := e.m.Addr
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return
	}
	m.loops.Add(1)
	go func() {
		defer m.loops.Done()
		for first := true; ; first = false {
			_, err := m.ml.Ping(id, ua)
			again := m.afterPing(id, addr, err, first)
			m.pings.Add(1)
			if !again {
				return
			}
			select {
			case <-time.After(m.cfg.ProbeInterval):
			case <-m.stop:
				return
			}
		}
	}()
}

// afterPing applies the result of NotifyUnreachable's ping of id and
// reports whether to ping again.
func (m *Membership) afterPing(id, addr string, err error, first bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.members[id]
	if !ok || !e.gone.IsZero() || e.m.Addr != addr {
		return false // memberlist decided, or the member moved
	}
	if err == nil {
		if e.unreachable {
			e.unreachable = false
			e.m.State = StateAlive
			m.events.push(Event{Type: EventUpdate, Member: e.m})
		}
		return false
	}
	if first {
		if e.unreachable { // another call is already watching it
			return false
		}
		e.unreachable = true
		e.m.State = StateSuspect
		m.events.push(Event{Type: EventUpdate, Member: e.m})
		m.log.Info("member unreachable, suspect until it answers", "member", id, "err", err)
		return true
	}
	return e.unreachable // false once a memberlist event replaced the entry
}

// Leave announces that this node is leaving, waits until the announcement
// reached another member or timeout passes, and stops discovery and
// beacons so that the node does not rejoin. Call Shutdown afterwards.
func (m *Membership) Leave(timeout time.Duration) error {
	m.stopLoops()
	deadline := time.Now().Add(timeout)
	if m.ml.NumMembers() > 1 {
		// Spend up to half the timeout getting the intent out; the rest is
		// for memberlist's own leave message.
		sent := make(chan struct{})
		m.bq.QueueBroadcast(&leaveBroadcast{msg: encodeLeaveIntent(m.cfg.Meta.ID), done: sent})
		select {
		case <-sent:
		case <-time.After(timeout / 2):
		}
	}
	if err := m.ml.Leave(max(time.Until(deadline), time.Millisecond)); err != nil {
		return fmt.Errorf("membership: leave: %w", err)
	}
	return nil
}

// Shutdown stops gossip at once and closes the listeners and the Events
// channel. Without a Leave first, the others declare this node dead after
// their failure detectors time out. It is safe to call more than once.
func (m *Membership) Shutdown() error {
	m.shutdownOnce.Do(func() {
		m.stopLoops()
		if err := m.ml.Shutdown(); err != nil {
			m.shutdownErr = fmt.Errorf("membership: shutdown: %w", err)
		}
		m.loops.Wait()
		m.events.close()
	})
	return m.shutdownErr
}

func (m *Membership) stopLoops() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.stopped {
		m.stopped = true
		close(m.stop)
	}
}

// discoverLoop joins whatever discovery finds, every RejoinInterval while
// alone and every HealInterval after.
func (m *Membership) discoverLoop() {
	defer m.loops.Done()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.TCPTimeout+5*time.Second)
		go func() {
			select {
			case <-m.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		addrs, err := m.dis.discover(ctx)
		if err != nil {
			m.log.Warn("discovery failed", "err", err)
		}
		addrs = slices.DeleteFunc(addrs, func(a string) bool { return a == m.localAddr })
		if len(addrs) > 0 {
			select {
			case <-m.stop:
				cancel()
				return
			default:
			}
			n, err := m.ml.Join(addrs)
			if err != nil {
				m.log.Warn("join failed", "addrs", addrs, "joined", n, "err", err)
			} else {
				m.log.Debug("joined", "addrs", addrs, "joined", n)
			}
		}
		cancel()
		wait := m.cfg.HealInterval
		if m.ml.NumMembers() < 2 {
			wait = m.cfg.RejoinInterval
		}
		select {
		case <-time.After(wait):
		case <-m.stop:
			return
		}
	}
}

// beaconLoop announces this node every BeaconInterval while alone and
// every BeaconHealInterval once in a cluster of two or more.
func (m *Membership) beaconLoop(to []net.IP) {
	defer m.loops.Done()
	msg, err := encodeBeacon(m.cfg.ClusterName, m.cfg.Meta.ID, m.localAddr, m.cfg.GossipKey)
	if err != nil {
		m.log.Error("beacon disabled", "err", err)
		return
	}
	port := m.tr.port()
	for {
		for _, ip := range to {
			if _, err := m.tr.udp.WriteTo(msg, &net.UDPAddr{IP: ip, Port: port}); err != nil {
				m.log.Debug("beacon send failed", "to", ip.String(), "err", err)
			}
		}
		wait := m.cfg.BeaconHealInterval
		if m.ml.NumMembers() < 2 {
			wait = m.cfg.BeaconInterval
		}
		select {
		case <-time.After(wait):
		case <-m.stop:
			return
		}
	}
}

// onBeacon is called by the transport's read loops for each beacon. It
// must not block them: joins go to joinLoop, and are dropped when it is
// behind (the sender beacons again).
func (m *Membership) onBeacon(b beacon, from net.Addr) {
	if b.Cluster != m.cfg.ClusterName {
		m.log.Debug("beacon of another cluster ignored", "cluster", b.Cluster, "member", b.ID, "from", addrString(from))
		return
	}
	if b.ID == m.cfg.Meta.ID {
		return
	}
	if !b.verify(m.cfg.GossipKey) {
		m.log.Debug("beacon with a bad or missing tag ignored", "member", b.ID, "from", addrString(from))
		return
	}
	m.mu.Lock()
	e, known := m.members[b.ID]
	alive := known && e.gone.IsZero() && e.m.Addr == b.Addr
	m.mu.Unlock()
	if alive {
		return
	}
	select {
	case m.joinC <- b.Addr:
	default:
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func (m *Membership) joinLoop() {
	defer m.loops.Done()
	for {
		select {
		case addr := <-m.joinC:
			if n, err := m.ml.Join([]string{addr}); err != nil {
				m.log.Warn("join from beacon failed", "addr", addr, "joined", n, "err", err)
			} else {
				m.log.Info("joined from beacon", "addr", addr)
			}
		case <-m.stop:
			return
		}
	}
}

// delegate gives memberlist this node's metadata and carries leave
// intents; the cluster has no other state of its own to gossip. memberlist
// calls it from its packet goroutines; none of its methods block.
type delegate struct {
	m    *Membership
	meta []byte
}

func (d *delegate) NodeMeta(limit int) []byte {
	if len(d.meta) > limit { // Validate keeps it within MetaMaxSize
		return nil
	}
	return d.meta
}

func (d *delegate) NotifyMsg(b []byte) {
	id, ok := decodeLeaveIntent(b)
	if !ok || id == d.m.cfg.Meta.ID {
		return
	}
	d.m.mu.Lock()
	now := time.Now()
	d.m.reapSometimesLocked(now)
	_, seen := d.m.leaving[id]
	d.m.leaving[id] = now
	d.m.mu.Unlock()
	if !seen { // relay once, so the intent outruns the leave message
		d.m.bq.QueueBroadcast(&leaveBroadcast{msg: append([]byte(nil), b...)})
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.m.bq.GetBroadcasts(overhead, limit)
}
func (d *delegate) LocalState(join bool) []byte            { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool) {}

// msgLeaveIntent starts a leave-intent user message: the byte, then the ID.
const msgLeaveIntent = 1

func encodeLeaveIntent(id string) []byte { return append([]byte{msgLeaveIntent}, id...) }

func decodeLeaveIntent(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != msgLeaveIntent {
		return "", false
	}
	return string(b[1:]), true
}

// leaveBroadcast is a queued leave intent; done, if set, is closed once it
// has been sent as often as memberlist retransmits anything.
type leaveBroadcast struct {
	msg  []byte
	done chan struct{}
}

func (b *leaveBroadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*leaveBroadcast)
	return ok && bytes.Equal(o.msg, b.msg)
}
func (b *leaveBroadcast) Message() []byte { return b.msg }
func (b *leaveBroadcast) Finished() {
	if b.done != nil {
		close(b.done)
	}
}

// eventDelegate receives memberlist's events. memberlist calls it
// synchronously from its gossip goroutines, so it must not block: it
// updates the table and queues the event.
type eventDelegate Membership

func (d *eventDelegate) member(n *memberlist.Node) Member {
	m := (*Membership)(d)
	meta, err := DecodeMeta(n.Meta)
	if err != nil {
		m.log.Warn("member has undecodable meta", "member", n.Name, "err", err)
	}
	meta.ID = n.Name
	// memberlist never sets n.State (its own state lives elsewhere), so
	// the caller decides the state.
	return Member{Meta: meta, Addr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))), State: StateAlive}
}

func (d *eventDelegate) NotifyJoin(n *memberlist.Node) {
	m := (*Membership)(d)
	mem := d.member(n)
	m.mu.Lock()
	m.reapSometimesLocked(time.Now())
	m.members[mem.Meta.ID] = &entry{m: mem}
	delete(m.leaving, mem.Meta.ID) // an intent from an earlier life
	m.events.push(Event{Type: EventJoin, Member: mem})
	m.mu.Unlock()
	m.log.Info("member joined", "member", mem.Meta.ID, "addr", mem.Addr)
}

func (d *eventDelegate) NotifyLeave(n *memberlist.Node) {
	m := (*Membership)(d)
	mem := d.member(n)
	m.mu.Lock()
	now := time.Now()
	m.reapSometimesLocked(now)
	mem.State = StateDead
	if _, ok := m.leaving[mem.Meta.ID]; ok {
		mem.State = StateLeft
		delete(m.leaving, mem.Meta.ID)
	}
	m.members[mem.Meta.ID] = &entry{m: mem, gone: now}
	m.events.push(Event{Type: EventLeave, Member: mem})
	m.mu.Unlock()
	m.log.Info("member gone", "member", mem.Meta.ID, "addr", mem.Addr, "state", mem.State.String())
}

func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) {
	m := (*Membership)(d)
	mem := d.member(n)
	m.mu.Lock()
	m.members[mem.Meta.ID] = &entry{m: mem}
	m.events.push(Event{Type: EventUpdate, Member: mem})
	m.mu.Unlock()
}

// MaxQueuedEvents bounds the events waiting for the reader of Events: a
// process that never reads them (brainy-core does not) keeps some 60 KB of
// events at most, however much the membership churns.
const MaxQueuedEvents = 256

// eventQueue is a bounded FIFO in front of a channel: push never blocks,
// so memberlist's goroutines never wait for the application; when full it
// drops the oldest event.
type eventQueue struct {
	mu      sync.Mutex
	q       []Event
	dropped uint64 // events pushed out of a full queue; guarded by mu
	wake    chan struct{}
	closed  chan struct{}
	out     chan Event
	once    sync.Once
	done    chan struct{}
}

func newEventQueue() *eventQueue {
	e := &eventQueue{wake: make(chan struct{}, 1), closed: make(chan struct{}), out: make(chan Event), done: make(chan struct{})}
	go e.run()
	return e
}

func (e *eventQueue) push(ev Event) {
	e.mu.Lock()
	if len(e.q) >= MaxQueuedEvents {
		e.q[0] = Event{}
		e.q = e.q[1:]
		e.dropped++
	}
	e.q = append(e.q, ev)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *eventQueue) droppedCount() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dropped
}

func (e *eventQueue) run() {
	defer close(e.done)
	defer close(e.out)
	for {
		e.mu.Lock()
		var ev Event
		have := len(e.q) > 0
		if have {
			ev = e.q[0]
			e.q[0] = Event{}
			e.q = e.q[1:]
			if len(e.q) == 0 {
				e.q = nil // a burst's array goes with it
			}
		}
		e.mu.Unlock()
		if !have {
			select {
			case <-e.wake:
				continue
			case <-e.closed:
				return
			}
		}
		select {
		case e.out <- ev:
		case <-e.closed:
			return
		}
	}
}

// close ends the stream; events still queued are dropped.
func (e *eventQueue) close() {
	e.once.Do(func() { close(e.closed) })
	<-e.done
}

// logWriter turns memberlist's log lines ("[LEVEL] memberlist: ...") into
// slog records at the matching level.
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	level := slog.LevelDebug
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{{"[ERR]", slog.LevelError}, {"[WARN]", slog.LevelWarn}, {"[INFO]", slog.LevelInfo}, {"[DEBUG]", slog.LevelDebug}} {
		if bytes.HasPrefix(line, []byte(l.prefix)) {
			level = l.level
			line = bytes.TrimSpace(line[len(l.prefix):])
			break
		}
	}
	w.log.Log(context.Background(), level, string(line), "source", "memberlist")
	return len(p), nil
}
