package upstream

import (
	"context"
	"time"

	"github.com/soullabs/brainy/internal/wire"
)

// Reads that wait on a silent core. A killed or cut-off core says
// nothing: a call to it waits until the feed's lease lapses (feedLapsed
// closes the connection) or its timeout. But a subscribed core proves it
// is alive every wire.FeedHeartbeat, so a feed silent for a few heartbeats
// is the earlier sign. A read still waiting on a core whose feed has been
// silent for suspectAfter is also sent elsewhere (another region's leader,
// or another core of the region), and the first answer wins; a new
// request skips such a core from the start. Reads only: a write is never
// sent twice. A core that is merely slow keeps heartbeating, so healthy
// traffic never leaves its region this way.

// suspectAfter is how long a feed may be silent before its core is
// suspected: two and a half heartbeats (one lost push is not enough).
const suspectAfter = wire.FeedHeartbeat * 5 / 2

// suspectPoll is how often a waiting read checks its core's feed.
const suspectPoll = wire.FeedHeartbeat / 2

// suspect reports whether addr's feed is subscribed and has been silent
// for suspectAfter. Without a feed (none subscribed yet, or a Backend
// without OnChanges) nothing is known: not suspect.
func (b *Backend) suspect(addr string, now int64) bool {
	if b.cfg.OnChanges == nil {
		return false
	}
	b.feedMu.Lock()
	last, ok := b.feeds[addr]
	b.feedMu.Unlock()
	return ok && now-last > int64(suspectAfter)
}

// watched sends a read to the core at n and, if n's feed falls silent
// before it answers, to the first of alt as well.
func (b *Backend) watched(ctx context.Context, n routeNode, alt func() []routeNode, method uint16, req []byte) (out []byte, err error, final bool) {
	next := func() (routeNode, bool, bool) {
		if !b.suspect(n.addr, time.Now().UnixNano()) {
			return routeNode{}, false, true
		}
		if others := alt(); len(others) > 0 {
			b.rescues.Add(1)
			return others[0], true, false
		}
		return routeNode{}, false, false
	}
	return b.race(ctx, n, suspectPoll, next, nil, method, req)
}
