package federation

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/soullabs/brainy/core"
)

// An inbox holds the batches of one source region's partition that wait
// at this node, its leader in this region, and applies them in the order
// of the source's log, merged.
//
// A sender pipelines its batches (link.catchUp), so they arrive out of
// order at times, and under load several wait at once. Applying each on
// its own would cost one raft cycle apiece, one after another, since each
// must follow its predecessor: the partition's replication would queue
// behind its own fsyncs. The inbox instead takes every waiting batch that
// continues the partition's position — a chain — and proposes them as one
// OpReplicate command: one raft cycle for all of them, and each sender
// hears the same answer. A batch whose predecessor has not come waits for
// it up to reorderWait, then is answered as a gap (the sender resumes from
// the position).
type inbox struct {
	f       *Federation
	source  string
	part    int
	arrived chan struct{} // a batch was queued (capacity 1)

	mu      sync.Mutex
	queue   []*pending // guarded by mu
	running bool       // a drain goroutine runs; guarded by mu
}

// pending is one batch waiting in an inbox.
type pending struct {
	cmd     *core.Command
	size    int
	arrived time.Time
	done    chan pendingResult // capacity 1: drain never blocks on a sender gone
}

type pendingResult struct {
	res core.Replicated
	err error
}

// maxMergedBytes bounds the values of one merged command: the raft entry
// must fit a transport frame when it goes to the partition's followers.
const maxMergedBytes = 1 << 20

// reorderWait bounds how long a batch waits for the one before it.
const reorderWait = time.Second

// inboxFor returns the inbox of source's partition part.
func (f *Federation) inboxFor(source string, part int) *inbox {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := inboxKey{source, part}
	b := f.inboxes[k]
	if b == nil {
		b = &inbox{f: f, source: source, part: part, arrived: make(chan struct{}, 1)}
		f.inboxes[k] = b
	}
	return b
}

type inboxKey struct {
	source string
	part   int
}

// apply queues cmd and waits for its outcome (or ctx).
func (b *inbox) apply(ctx context.Context, cmd *core.Command) (core.Replicated, error) {
	p := &pending{cmd: cmd, arrived: time.Now(), done: make(chan pendingResult, 1)}
	for i := range cmd.Values {
		p.size += cmd.Values[i].Size()
	}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	if !b.running {
		if !b.f.goroutine() {
			b.queue = b.queue[:len(b.queue)-1]
			b.mu.Unlock()
			return core.Replicated{}, errClosed
		}
		b.running = true
		go b.drain()
	}
	b.mu.Unlock()
	select {
	case b.arrived <- struct{}{}:
	default:
	}
	select {
	case r := <-p.done:
		return r.res, r.err
	case <-ctx.Done():
		return core.Replicated{}, ctx.Err()
	}
}

// drain applies chains of waiting batches until none waits.
func (b *inbox) drain() {
	defer b.f.wg.Done()
	for {
		b.mu.Lock()
		q := b.queue
		b.queue = nil
		if len(q) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		if rest := b.applyChain(q); len(rest) > 0 {
			b.mu.Lock()
			b.queue = append(rest, b.queue...)
			b.mu.Unlock()
			// Only batches whose predecessors have not come are left: wait
			// for an arrival (or a while, for a position moved elsewhere).
			t := time.NewTimer(5 * time.Millisecond)
			select {
			case <-b.arrived:
			case <-t.C:
			case <-b.f.stop:
				t.Stop()
				b.answer(rest, pendingResult{err: errClosed})
				b.mu.Lock()
				b.queue, b.running = nil, false
				b.mu.Unlock()
				return
			}
			t.Stop()
		}
	}
}

// applyChain applies the batches of q that continue the partition's
// position, as one command, answers them, and returns those that must wait.
func (b *inbox) applyChain(q []*pending) []*pending {
	f := b.f
	ctx, cancel := context.WithTimeout(context.Background(), f.cfg.CallTimeout)
	defer cancel()
	pos, err := f.core.ReplicationPosition(ctx, b.part, b.source)
	if err != nil {
		b.answer(q, pendingResult{err: err})
		return nil
	}
	slices.SortStableFunc(q, func(x, y *pending) int { return cmp.Compare(x.cmd.From, y.cmd.From) })
	var chain, rest []*pending
	end, size := pos, 0
	for _, p := range q {
		if p.cmd.From <= end && (len(chain) == 0 || size+p.size <= maxMergedBytes) {
			chain = append(chain, p)
			end = max(end, p.cmd.To)
			size += p.size
		} else {
			rest = append(rest, p)
		}
	}
	// Batches that waited too long for a predecessor hear the position.
	now := time.Now()
	var waiting []*pending
	for _, p := range rest {
		if len(chain) == 0 && now.Sub(p.arrived) > reorderWait {
			p.done <- pendingResult{res: core.Replicated{Position: pos},
				err: core.ErrReplicationGap}
			continue
		}
		waiting = append(waiting, p)
	}
	if len(chain) == 0 {
		return waiting
	}
	values := chain[0].cmd.Values
	if len(chain) > 1 {
		values = nil
		for _, p := range chain {
			values = append(values, p.cmd.Values...)
		}
	}
	// The chain covers the source's log from its first batch's start to
	// end (a batch wholly behind the position, alone, is dropped by apply).
	res, err := f.core.ApplyReplicated(ctx, b.part, b.source, chain[0].cmd.From, end, false, values)
	if err == nil {
		f.received.Add(uint64(len(chain)))
		if s := f.lagOf(b.source); s != nil {
			s.add(values, time.Now())
		}
	}
	b.answer(chain, pendingResult{res: res, err: err})
	return waiting
}

func (b *inbox) answer(ps []*pending, r pendingResult) {
	for _, p := range ps {
		p.done <- r
	}
}
