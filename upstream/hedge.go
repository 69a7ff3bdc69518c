package upstream

import (
	"context"
	"time"
)

// Hedged stale reads. A read that accepts a replica's answer
// (consistency=stale) goes to the nearest replica of its partition; if
// that one has not answered when it usually would have — its smoothed
// round trip plus four deviations, about its 95th percentile — the same
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

// hedgeDelay is how long to wait for addr before hedging.
func (b *Backend) hedgeDelay(addr string) time.Duration {
	b.rttMu.Lock()
	r := b.rtts[addr]
	b.rttMu.Unlock()
	if r == nil || r.samples == 0 {
		return unknownRTTHedge
	}
	return max(minHedgeDelay, time.Duration((r.srtt+4*r.dev)*float64(time.Millisecond)))
}

// mayHedge takes a hedge from the budget.
func (b *Backend) mayHedge() bool {
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
	type answer struct {
		out   []byte
		err   error
		final bool
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan answer, 2)
	send := func(n routeNode) {
		out, err, final := b.try(hctx, n.addr, n.down, method, req)
		ch <- answer{out, err, final}
	}
	go send(reps[0])
	inFlight := 1
	timer := time.NewTimer(b.hedgeDelay(reps[0].addr))
	defer timer.Stop()
	var last answer
	for inFlight > 0 {
		select {
		case a := <-ch:
			inFlight--
			if a.final && (a.err == nil || answered(a.err)) {
				return a.out, a.err, true
			}
			last = a
		case <-timer.C:
			if len(reps) > 1 && b.mayHedge() {
				go send(reps[1])
				inFlight++
			}
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err(), true
	}
	return nil, last.err, false
}
