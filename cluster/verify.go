package cluster

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/soullabs/brainy/internal/shrink"
	"github.com/soullabs/brainy/transport/pki"
)

// Gossip says who is alive, but proves nothing: anyone who can reach the
// gossip port (with the gossip key, when one is set) can announce a member
// with any id and any QUIC address. So a member counts — for placement,
// for raft messages it sends, for the addresses raft messages go to — only
// once this node has connected to the QUIC address the member announces
// and the certificate there, verified against the cluster CA, is a core
// certificate naming exactly the member's id. A stranger without a
// certificate from the cluster CA can then never become a replica, and a
// holder of one node's certificate cannot pose as another node.

// Verification timing. A failed check is retried after verifyRetry, so a
// hostile announcement costs this node one handshake per verifyRetry.
const (
	verifyTimeout     = 2 * time.Second
	verifyRetry       = 5 * time.Second
	verifyConcurrency = 8
)

// identifier is what verifier needs of transport.Client.
type identifier interface {
	Identify(ctx context.Context, addr string) (string, pki.Role, error)
}

// verifier keeps the set of members whose identity was proven over mutual
// TLS. filter answers from that set at once and checks newcomers in the
// background, so the reconcile loop never waits on a handshake.
type verifier struct {
	client identifier
	self   string
	log    *slog.Logger

	mu      sync.Mutex
	proven  map[string]string    // member id → the QUIC address its certificate was seen at
	failed  map[string]time.Time // member id → when its last check failed
	running map[string]bool      // checks in flight, at most verifyConcurrency
	peaks   [2]int               // the most proven and failed held (shrink.Map)
	wg      sync.WaitGroup
	stop    chan struct{}
}

func newVerifier(client identifier, self string, log *slog.Logger) *verifier {
	return &verifier{client: client, self: self, log: log,
		proven: map[string]string{}, failed: map[string]time.Time{}, running: map[string]bool{},
		stop: make(chan struct{})}
}

// filter returns the members of ms whose identity is proven at the address
// they announce now (this node always is), and starts checks of the rest,
// at most verifyConcurrency at a time: those beyond wait for a later
// filter (the reconcile loop calls it every interval), so a flood of
// announced members costs a bounded number of goroutines. Members no
// longer announced are forgotten, so the maps stay as small as the
// membership.
func (v *verifier) filter(ms []Peer) []Peer {
	now := time.Now()
	out := ms[:0:0]
	v.mu.Lock()
	defer v.mu.Unlock()
	announced := make(map[string]bool, len(ms))
	for _, p := range ms {
		announced[p.ID] = true
		if addr, ok := v.proven[p.ID]; p.ID == v.self || (ok && addr == p.QUICAddr) {
			out = append(out, p)
			continue
		}
		if v.running[p.ID] || now.Sub(v.failed[p.ID]) < verifyRetry || len(v.running) >= verifyConcurrency {
			continue
		}
		select {
		case <-v.stop:
			continue
		default:
		}
		v.running[p.ID] = true
		v.wg.Add(1)
		go v.check(p)
	}
	for id := range v.proven {
		if !announced[id] {
			delete(v.proven, id)
		}
	}
	for id := range v.failed {
		if !announced[id] {
			delete(v.failed, id)
		}
	}
	v.proven = shrink.Map(v.proven, &v.peaks[0])
	v.failed = shrink.Map(v.failed, &v.peaks[1])
	return out
}

// check connects to p's QUIC address and records whether the certificate
// there is a core's naming p.ID.
func (v *verifier) check(p Peer) {
	defer v.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), verifyTimeout)
	id, role, err := v.client.Identify(ctx, p.QUICAddr)
	cancel()
	ok := err == nil && id == p.ID && role == pki.RoleCore
	if !ok {
		v.log.Warn("member not counted: its QUIC address does not prove its identity",
			"member", p.ID, "quic_addr", p.QUICAddr, "certificate_names", id, "role", role, "err", err)
	}
	v.done(p, ok)
}

func (v *verifier) done(p Peer, ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.running, p.ID)
	if ok {
		v.proven[p.ID] = p.QUICAddr
		delete(v.failed, p.ID)
	} else {
		v.failed[p.ID] = time.Now()
	}
}

// settle checks the members of ms, waiting at most verifyTimeout (and a
// second) for the checks, and returns those proven: at start-up, so that
// the members already announced count from the first moment.
func (v *verifier) settle(ms []Peer) []Peer {
	deadline := time.Now().Add(verifyTimeout + time.Second)
	for {
		out := v.filter(ms) // starts the checks that fit, as slots free up
		v.mu.Lock()
		n := len(v.running)
		v.mu.Unlock()
		if n == 0 || time.Now().After(deadline) {
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// close stops starting checks and waits for those running.
func (v *verifier) close() {
	close(v.stop)
	v.wg.Wait()
}
