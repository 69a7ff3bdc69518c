package upstream

import (
	"context"
	"time"

	"github.com/soullabs/brainy/internal/wire"
)

// Hedged stale reads. A read that accepts a replica's answer
// (consistency=stale) goes to the nearest replica of its partition; if
// that one has not answered when it usually would have — its stale reads'
// smoothed time plus four deviations, about their 95th percentile — the same
// read goes to the next nearest as well, and the first answer wins ("The
// Tail at Scale", Dean and Barroso 2013). Reads only: a write is never
// sent twice. Hedges are at most maxHedgeShare of stale reads (plus a
// small burst), so a slow cluster is not asked twice as much.

const (
	maxHedgeShare   = 0.05
	hedgeBurst      = 10
	minHedgeDelay   = time.Millisecond
	unknownRTTHedge = 50 * time.Millisecond // before a replica was probed
)

// hedgeDelay is how long to wait for addr before hedging: its stale
// reads' usual time (smoothed, plus four deviations) once a few were
// measured — a ping's round trip leaves out the work and the queueing a
// read meets on a busy core, and hedging on it fires on every busy moment.
func (b *Backend) hedgeDelay(addr string) time.Duration {
	b.rttMu.Lock()
	r := b.reads[addr]
	b.rttMu.Unlock()
	if r == nil || r.samples < 8 {
		return unknownRTTHedge
	}
	return max(minHedgeDelay, time.Duration((r.srtt+4*r.dev)*float64(time.Millisecond)))
}

// readTook records how long a stale read at addr took to be answered.
func (b *Backend) readTook(addr string, d time.Duration) {
	b.rttMu.Lock()
	defer b.rttMu.Unlock()
	r := b.reads[addr]
	if r == nil {
		// Probing forgets cores no longer known; without it, the bound
		// keeps the map small (a core beyond it hedges on the default).
		if len(b.reads) >= wire.MaxTopologyNodes {
			return
		}
		r = &rtt{}
		b.reads[addr] = r
	}
	r.sample(float64(d) / float64(time.Millisecond))
}

// mayHedge takes a hedge from the budget.
func (b *Backend) mayHedge() bool {
	if b.noHedge {
		return false
	}
	reads, hedges := b.staleReads.Load(), b.hedges.Load()
	if float64(hedges) >= maxHedgeShare*float64(reads)+hedgeBurst {
		return false
	}
	b.hedges.Add(1)
	return true
}

// hedged sends a read to reps[0], and to reps[1] too if the first is slow
// and the budget allows; the first final answer wins and the other call
// is cancelled. final is false when every attempt failed in a way that
// lets the caller try elsewhere.
func (b *Backend) hedged(ctx context.Context, reps []routeNode, method uint16, req []byte) (out []byte, err error, final bool) {
	b.staleReads.Add(1)
	next := func() (routeNode, bool, bool) {
		if len(reps) > 1 && b.mayHedge() {
			return reps[1], true, false
		}
		return routeNode{}, false, false
	}
	return b.race(ctx, reps[0], b.hedgeDelay(reps[0].addr), next, b.readTook, method, req)
}

// race sends a read to first and, each time delay passes with no answer,
// asks next whether to send it to another node as well (send) and whether
// to ask again after another delay (again); it sends to one other at
// most. The first final answer wins and the other call is cancelled.
// took, when set, is told how long each answered call took. final is
// false when every attempt failed in a way that lets the caller try
// elsewhere.
func (b *Backend) race(ctx context.Context, first routeNode, delay time.Duration, next func() (n routeNode, send, again bool),
	took func(addr string, d time.Duration), method uint16, req []byte) (out []byte, err error, final bool) {
	type answer struct {
		out   []byte
		err   error
		final bool
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan answer, 2)
	send := func(n routeNode) {
		start := time.Now()
		out, err, final := b.try(rctx, n.addr, n.down, method, req)
		if final && answered(err) && took != nil {
			took(n.addr, time.Since(start))
		}
		ch <- answer{out, err, final}
	}
	go send(first)
	inFlight := 1
	timer := time.NewTimer(delay)
	defer timer.Stop()
	var last answer
	for inFlight > 0 {
		select {
		case a := <-ch:
			inFlight--
			if a.final && answered(a.err) {
				return a.out, a.err, true
			}
			last = a
		case <-timer.C:
			n, ok, again := next()
			if ok {
				go send(n)
				inFlight++
			} else if again {
				timer.Reset(delay)
			}
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err(), true
	}
	return last.out, last.err, last.final
}
