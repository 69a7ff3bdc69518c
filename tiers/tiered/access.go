package tiered

import (
	"sync"

	"github.com/cespare/xxhash/v2"
)

// accessShards spreads the access map over this many locks, so readers on
// different keys rarely contend.
const accessShards = 64

// accessTimes holds each key's last access, in whole seconds of the Store's
// clock. A key with no entry was last accessed at base (when the Store was
// opened): after a restart nothing is older than the process.
//
// Entries are dropped when a key is deleted or when it reaches the lowest
// tier, where its age no longer matters, so the map holds the keys
// accessed since Open that are still in a tier a move can start from.
type accessTimes struct {
	base   int64
	shards [accessShards]accessShard
}

type accessShard struct {
	mu sync.RWMutex
	m  map[string]int64 // guarded by mu
}

func newAccessTimes(base int64) *accessTimes {
	a := &accessTimes{base: base}
	for i := range a.shards {
		a.shards[i].m = make(map[string]int64)
	}
	return a
}

func (a *accessTimes) shard(key []byte) *accessShard {
	return &a.shards[xxhash.Sum64(key)%accessShards]
}

// touch records an access at now. Most calls find the same second already
// recorded and leave under the read lock, without allocating.
func (a *accessTimes) touch(key []byte, now int64) {
	sh := a.shard(key)
	sh.mu.RLock()
	t, ok := sh.m[string(key)]
	sh.mu.RUnlock()
	if ok && t >= now || !ok && now <= a.base {
		return
	}
	sh.mu.Lock()
	if t, ok := sh.m[string(key)]; !ok || t < now {
		sh.m[string(key)] = now
	}
	sh.mu.Unlock()
}

// get returns key's last access.
func (a *accessTimes) get(key []byte) int64 {
	sh := a.shard(key)
	sh.mu.RLock()
	t, ok := sh.m[string(key)]
	sh.mu.RUnlock()
	if !ok {
		return a.base
	}
	return t
}

// forget drops key's entry.
func (a *accessTimes) forget(key []byte) {
	sh := a.shard(key)
	sh.mu.Lock()
	delete(sh.m, string(key))
	sh.mu.Unlock()
}

// keyLocks serialises the moves of one key: a demotion and a promotion of
// the same key must not interleave their steps.
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock // guarded by mu
}

type keyLock struct {
	mu   sync.Mutex
	refs int // guarded by keyLocks.mu
}

// lock locks key and returns its unlock.
func (l *keyLocks) lock(key []byte) func() {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]*keyLock)
	}
	k := l.m[string(key)]
	if k == nil {
		k = &keyLock{}
		l.m[string(key)] = k
	}
	k.refs++
	l.mu.Unlock()
	k.mu.Lock()
	name := string(key)
	return func() {
		k.mu.Unlock()
		l.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(l.m, name)
		}
		l.mu.Unlock()
	}
}
