package membership

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond until it holds or timeout passes. The timeouts are
// generous bounds on a loaded machine, not performance targets.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func testMeta(i int) Meta {
	return Meta{
		ID:       fmt.Sprintf("node-%d", i),
		QUICAddr: fmt.Sprintf("127.0.0.1:%d", 4400+i),
		HTTPAddr: fmt.Sprintf("127.0.0.1:%d", 8000+i),
		Zone:     fmt.Sprintf("zone-%d", i%2),
		Region:   "test-1",
		Role:     "core",
	}
}

// startMember starts a member on 127.0.0.1 with a free port and stops it
// when the test ends.
func startMember(t *testing.T, cfg Config) *Membership {
	t.Helper()
	cfg.BindAddr = "127.0.0.1"
	if cfg.BindPort == 0 {
		cfg.BindPort = AnyPort
	}
	if cfg.RejoinInterval == 0 {
		cfg.RejoinInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	m, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Meta.ID, err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return nil
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startCluster starts n members; every member after the first has the
// first as its only peer.
func startCluster(t *testing.T, n int, mutate func(i int, c *Config)) []*Membership {
	t.Helper()
	var ms []*Membership
	for i := range n {
		cfg := Config{Meta: testMeta(i)}
		if i > 0 {
			cfg.Peers = []string{ms[0].LocalNode().Addr}
		}
		if mutate != nil {
			mutate(i, &cfg)
		}
		ms = append(ms, startMember(t, cfg))
	}
	return ms
}

func aliveIDs(m *Membership) []string {
	var ids []string
	for _, mem := range m.Members() {
		if mem.State == StateAlive {
			ids = append(ids, mem.Meta.ID)
		}
	}
	return ids
}

func memberState(m *Membership, id string) (State, bool) {
	for _, mem := range m.Members() {
		if mem.Meta.ID == id {
			return mem.State, true
		}
	}
	return 0, false
}

// collectEvents drains m.Events into a list readable at any time.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func collectEvents(m *Membership) *eventLog {
	l := &eventLog{}
	go func() {
		for ev := range m.Events() {
			l.mu.Lock()
			l.evs = append(l.evs, ev)
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *eventLog) has(typ EventType, id string, st State) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range l.evs {
		if ev.Type == typ && ev.Member.Meta.ID == id && ev.Member.State == st {
			return true
		}
	}
	return false
}

func TestThreeMembersJoinViaPeers(t *testing.T) {
	ms := startCluster(t, 3, nil)
	logs := make([]*eventLog, len(ms))
	for i, m := range ms {
		logs[i] = collectEvents(m)
	}
	for _, m := range ms {
		waitFor(t, 20*time.Second, m.cfg.Meta.ID+" to see 3 alive members", func() bool { return len(aliveIDs(m)) == 3 })
	}
	for i, m := range ms {
		got := m.Members()
		for j, mem := range got {
			if mem.Meta != testMeta(j) {
				t.Errorf("%s sees member %d with meta %+v, want %+v", m.cfg.Meta.ID, j, mem.Meta, testMeta(j))
			}
			if mem.Addr != ms[j].LocalNode().Addr {
				t.Errorf("%s sees %s at %s, want %s", m.cfg.Meta.ID, mem.Meta.ID, mem.Addr, ms[j].LocalNode().Addr)
			}
		}
		for j := range ms {
			id := testMeta(j).ID
			waitFor(t, 5*time.Second, fmt.Sprintf("join event of %s at %s", id, m.cfg.Meta.ID), func() bool {
				return logs[i].has(EventJoin, id, StateAlive)
			})
		}
		if m.NumAlive() != 3 {
			t.Errorf("%s NumAlive = %d, want 3", m.cfg.Meta.ID, m.NumAlive())
		}
	}
}

func TestCrashedMemberIsDeclaredDead(t *testing.T) {
	ms := startCluster(t, 3, nil)
	ev := collectEvents(ms[0])
	for _, m := range ms {
		waitFor(t, 20*time.Second, "3 alive members", func() bool { return len(aliveIDs(m)) == 3 })
	}
	crashed := ms[2].cfg.Meta.ID
	start := time.Now()
	if err := ms[2].Shutdown(); err != nil { // no Leave: a crash to the others
		t.Fatal(err)
	}
	for _, m := range ms[:2] {
		waitFor(t, 20*time.Second, m.cfg.Meta.ID+" to declare "+crashed+" dead", func() bool {
			st, ok := memberState(m, crashed)
			return ok && st == StateDead
		})
	}
	// Reported, not asserted: how fast the default timings detect a crash.
	t.Logf("both survivors declared the crashed member dead after %v", time.Since(start))
	waitFor(t, 5*time.Second, "a leave event with state dead", func() bool { return ev.has(EventLeave, crashed, StateDead) })
}

func TestLeaveShowsAsLeft(t *testing.T) {
	ms := startCluster(t, 3, nil)
	for _, m := range ms {
		waitFor(t, 20*time.Second, "3 alive members", func() bool { return len(aliveIDs(m)) == 3 })
	}
	leaver := ms[2].cfg.Meta.ID
	if err := ms[2].Leave(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := ms[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:2] {
		waitFor(t, 20*time.Second, m.cfg.Meta.ID+" to see "+leaver+" left", func() bool {
			st, ok := memberState(m, leaver)
			return ok && st == StateLeft
		})
	}
}

// countingHandler counts records whose message contains substr.
type countingHandler struct {
	slog.Handler
	substr string
	mu     *sync.Mutex
	n      *int
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.substr) {
		h.mu.Lock()
		*h.n++
		h.mu.Unlock()
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

func TestWrongGossipKeyCannotJoin(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	wrong := bytes.Repeat([]byte{2}, 32)
	ms := startCluster(t, 2, func(i int, c *Config) { c.GossipKey = key })
	waitFor(t, 20*time.Second, "the members with the right key to join", func() bool { return len(aliveIDs(ms[0])) == 2 })

	var mu sync.Mutex
	fails := 0
	intruder := startMember(t, Config{
		Meta:      Meta{ID: "intruder"},
		GossipKey: wrong,
		Peers:     []string{ms[0].LocalNode().Addr, ms[1].LocalNode().Addr},
		Logger:    slog.New(countingHandler{substr: "join failed", mu: &mu, n: &fails}),
	})
	waitFor(t, 20*time.Second, "the intruder to fail to join three times", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return fails >= 3
	})
	for _, m := range ms {
		if _, ok := memberState(m, "intruder"); ok {
			t.Fatalf("%s lists the member with the wrong key", m.cfg.Meta.ID)
		}
	}
	if got := aliveIDs(intruder); len(got) != 1 {
		t.Fatalf("member with the wrong key sees %v", got)
	}
}

func TestDifferentClustersDoNotMerge(t *testing.T) {
	a := startMember(t, Config{Meta: Meta{ID: "a"}, ClusterName: "one"})
	var mu sync.Mutex
	fails := 0
	b := startMember(t, Config{Meta: Meta{ID: "b"}, ClusterName: "two", Peers: []string{a.LocalNode().Addr},
		Logger: slog.New(countingHandler{substr: "join failed", mu: &mu, n: &fails})})
	waitFor(t, 20*time.Second, "the other cluster's member to fail to join twice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return fails >= 2
	})
	if len(aliveIDs(a)) != 1 || len(aliveIDs(b)) != 1 {
		t.Fatalf("clusters merged: a sees %v, b sees %v", aliveIDs(a), aliveIDs(b))
	}
}

// TestBeaconOnGossipPortJoins sends a beacon to a member's gossip port by
// unicast: the transport must tell it from gossip and join the announced
// member, while gossip on the same port keeps working.
func TestBeaconOnGossipPortJoins(t *testing.T) {
	a := startMember(t, Config{Meta: Meta{ID: "a"}})
	b := startMember(t, Config{Meta: Meta{ID: "b"}})
	msg, err := encodeBeacon(DefaultClusterName, "b", b.LocalNode().Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("udp", a.LocalNode().Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write(msg); err != nil {
		t.Fatal(err)
	}
	for _, m := range []*Membership{a, b} {
		waitFor(t, 20*time.Second, m.cfg.Meta.ID+" to see 2 alive members", func() bool { return len(aliveIDs(m)) == 2 })
	}
}

// TestBeaconFilter checks which beacons make a member try to join.
func TestBeaconFilter(t *testing.T) {
	key := bytes.Repeat([]byte{3}, 16)
	m := startMember(t, Config{Meta: Meta{ID: "self"}, GossipKey: key})
	m.stopLoops() // keep joinLoop from draining joinC
	m.loops.Wait()
	for _, tc := range []struct {
		name            string
		cluster, id     string
		key             []byte
		wantJoinAttempt bool
	}{
		{"other cluster", "other", "n2", key, false},
		{"itself", DefaultClusterName, "self", key, false},
		{"no tag", DefaultClusterName, "n2", nil, false},
		{"wrong key", DefaultClusterName, "n2", bytes.Repeat([]byte{4}, 16), false},
		{"same cluster and key", DefaultClusterName, "n2", key, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := encodeBeacon(tc.cluster, tc.id, "127.0.0.1:1", tc.key)
			if err != nil {
				t.Fatal(err)
			}
			b, err := decodeBeacon(raw)
			if err != nil {
				t.Fatal(err)
			}
			m.onBeacon(b, nil)
			got := len(m.joinC) > 0
			for len(m.joinC) > 0 {
				<-m.joinC
			}
			if got != tc.wantJoinAttempt {
				t.Fatalf("join attempted = %v, want %v", got, tc.wantJoinAttempt)
			}
		})
	}
}

// TestNotifyUnreachable: with the regular probe rotation slowed to once
// every 10s, the only way the survivor can suspect the crashed member
// quickly is the direct ping NotifyUnreachable sends.
func TestNotifyUnreachable(t *testing.T) {
	ms := startCluster(t, 2, func(i int, c *Config) {
		c.ProbeInterval = 10 * time.Second
		c.ProbeTimeout = 200 * time.Millisecond
	})
	for _, m := range ms {
		waitFor(t, 20*time.Second, "2 alive members", func() bool { return len(aliveIDs(m)) == 2 })
	}
	ev := collectEvents(ms[0])
	// A member that answers stays alive.
	ms[0].NotifyUnreachable("node-1")
	waitFor(t, 5*time.Second, "the ping of a live member to finish", func() bool { return ms[0].pings.Load() == 1 })
	if st, _ := memberState(ms[0], "node-1"); st != StateAlive {
		t.Fatalf("a member that answered the ping is %v", st)
	}
	if ev.has(EventUpdate, "node-1", StateSuspect) {
		t.Fatal("a member that answered the ping was reported suspect")
	}
	if err := ms[1].Shutdown(); err != nil {
		t.Fatal(err)
	}
	ms[0].NotifyUnreachable("node-1")
	waitFor(t, 8*time.Second, "node-1 to become suspect", func() bool { return ev.has(EventUpdate, "node-1", StateSuspect) })
	if st, _ := memberState(ms[0], "node-1"); st != StateSuspect && st != StateDead {
		t.Fatalf("node-1 is %v after a failed ping", st)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := Config{
		Meta:      Meta{},
		BindAddr:  "not-an-ip",
		BindPort:  70000,
		Peers:     []string{"nohostport"},
		Discover:  []string{"dns:", "ec2:novalue", "consul:x"},
		GossipKey: []byte{1, 2, 3},
	}
	bad.EnsureDefaults()
	err := bad.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{
		"Meta.ID is required", `BindAddr ("not-an-ip")`, "BindPort (70000)", `peer "nohostport"`,
		`discover "dns:"`, `discover "ec2:novalue"`, `discover "consul:x"`, "GossipKey is 3 bytes",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	good := Config{Meta: Meta{ID: "n"}, Discover: []string{"dns:brainy.internal", "dns:brainy.internal:7000", "ec2:cluster=prod", "k8s"}}
	good.EnsureDefaults()
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if good.BindAddr != "127.0.0.1" || good.BindPort != DefaultBindPort || *good.Broadcast {
		t.Fatalf("defaults: bind %s:%d broadcast %v", good.BindAddr, good.BindPort, *good.Broadcast)
	}
	lan := Config{Meta: Meta{ID: "n"}, BindAddr: "10.1.2.3"}
	lan.EnsureDefaults()
	if !*lan.Broadcast {
		t.Fatal("broadcast is off by default on a LAN address")
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(context.Background(), Config{}); err == nil || !strings.Contains(err.Error(), "Meta.ID is required") {
		t.Fatalf("missing ID: error %v", err)
	}
	a := startMember(t, Config{Meta: Meta{ID: "a"}})
	_, port, _ := net.SplitHostPort(a.LocalNode().Addr)
	p, _ := parsePort(port)
	_, err := Start(context.Background(), Config{Meta: Meta{ID: "b"}, BindPort: p})
	if err == nil || !strings.Contains(err.Error(), "listen tcp 127.0.0.1:"+port) {
		t.Fatalf("port in use: error %v", err)
	}
}

// TestEventQueueIsBounded: a reader that does not read leaves at most
// MaxQueuedEvents events waiting; the oldest are dropped and counted, and
// what the reader gets later is the newest events, in order.
func TestEventQueueIsBounded(t *testing.T) {
	m := &Membership{events: newEventQueue()}
	defer m.events.close()
	const pushed = 3 * MaxQueuedEvents
	for i := range pushed {
		m.events.push(Event{Type: EventJoin, Member: Member{Meta: Meta{ID: strconv.Itoa(i)}}})
		m.events.mu.Lock()
		queued := len(m.events.q)
		m.events.mu.Unlock()
		if queued > MaxQueuedEvents {
			t.Fatalf("%d events queued after %d pushes, want at most %d", queued, i+1, MaxQueuedEvents)
		}
	}
	// The queue's goroutine may hold one early event, waiting to hand it
	// over; every other event is queued or dropped.
	dropped := m.DroppedEvents()
	if dropped < pushed-MaxQueuedEvents-1 || dropped > pushed-MaxQueuedEvents {
		t.Fatalf("%d events dropped of %d pushed, want %d (or one fewer)", dropped, pushed, pushed-MaxQueuedEvents)
	}
	last := -1
	for range pushed - int(dropped) {
		ev := <-m.Events()
		i, _ := strconv.Atoi(ev.Member.Meta.ID)
		if i <= last {
			t.Fatalf("event %d after event %d", i, last)
		}
		if i < pushed-MaxQueuedEvents && last >= 0 {
			t.Fatalf("event %d read after event %d: an old event outlived newer ones", i, last)
		}
		last = i
	}
	if last != pushed-1 {
		t.Fatalf("the last event read is %d, want %d", last, pushed-1)
	}
}

// TestDepartedMembersAreForgotten: members that joined and left are gone
// from the table DeadRetention after they went, although nobody called
// Members (which also reaps): the next membership event does it.
func TestDepartedMembersAreForgotten(t *testing.T) {
	const n = 5
	// Long enough that none is forgotten before the last has left.
	retention := 3 * time.Second
	ms := startCluster(t, n, func(i int, c *Config) { c.DeadRetention = retention })
	for _, m := range ms {
		waitFor(t, 20*time.Second, fmt.Sprintf("%d alive members", n), func() bool { return m.NumAlive() == n })
	}
	for _, m := range ms[1:] {
		if err := m.Leave(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		if err := m.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	table := func() (members, leaving int) {
		ms[0].mu.Lock()
		defer ms[0].mu.Unlock()
		return len(ms[0].members), len(ms[0].leaving)
	}
	waitFor(t, 20*time.Second, "the leaves to arrive", func() bool { return ms[0].NumAlive() == 1 })
	if got, _ := table(); got != n {
		t.Fatalf("%d members in the table right after the leaves, want all %d", got, n)
	}
	time.Sleep(retention + time.Second)
	late := startMember(t, Config{Meta: testMeta(n), Peers: []string{ms[0].LocalNode().Addr}})
	waitFor(t, 20*time.Second, "a late member to join", func() bool { return late.NumAlive() == 2 })
	// The join reaches this node's event handler a moment after the late
	// member sees it: wait for it, bounded.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		members, leaving := table()
		if members == 2 && leaving == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the table holds %d members and %d leave intents, want 2 (this node and the late one) and 0", members, leaving)
		}
	}
}
