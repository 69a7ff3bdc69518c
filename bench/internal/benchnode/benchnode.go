// Package benchnode holds what the benchmark drivers under bench/ share
// about the brainy-core nodes they start: the node, the ports it binds,
// waiting until a started node answers, and telling when a cluster's
// partition leaders have stopped moving.
package benchnode

import (
	"context"
	"fmt"
	"time"

	"github.com/soullabs/brainy/bench/internal/benchhttp"
	"github.com/soullabs/brainy/bench/internal/benchproc"
)

// Node is one brainy-core process on its own loopback address.
type Node struct {
	ID   string // its --node-id
	IP   string // its --bind address
	Proc *benchproc.Proc
}

// URL is the address of path on n's HTTP API (port 7070).
func (n *Node) URL(path string) string { return "http://" + n.IP + ":7070" + path }

// Ports are the TCP ports a brainy-core node binds on its address (HTTP
// API, transport, gossip), checked free (benchproc.CheckFree) before a
// node starts.
var Ports = []int{7070, 7071, 7946}

// WaitReady waits through api, up to timeout, until the node whose process
// is p answers GET readyz (its /readyz URL) with 200, each GET with a 1 s
// timeout. While p has exited, each poll fails with how it ended.
func WaitReady(ctx context.Context, api *benchhttp.Client, p *benchproc.Proc, readyz string, timeout time.Duration) error {
	return api.WaitFor(ctx, timeout, func() (bool, string) {
		if err := p.ExitErr(); err != nil {
			return false, err.Error()
		}
		code, _, err := api.Do(ctx, "GET", readyz, nil, time.Second)
		if err != nil {
			return false, err.Error()
		}
		return code == 200, fmt.Sprintf("readyz %d", code)
	})
}

// Leaders tells when a cluster's partition leaders have stayed put for a
// second: leaderships move to their preferred nodes shortly after a node
// starts or rejoins. The zero value is ready to use, one per wait.
type Leaders struct {
	prev  map[int]string
	since time.Time
}

// Settled takes the leader of each partition as the cluster reports it now
// (nil while the cluster is not ready, why saying why) and reports whether
// the same leaders have held for a second, or why not.
func (l *Leaders) Settled(leaders map[int]string, why string) (bool, string) {
	if leaders == nil {
		l.prev = nil
		return false, why
	}
	if !sameLeaders(l.prev, leaders) {
		l.prev, l.since = leaders, time.Now()
		return false, "leaders still moving"
	}
	return time.Since(l.since) >= time.Second, "leaders still moving"
}

// sameLeaders reports whether a, once set, equals b.
func sameLeaders(a, b map[int]string) bool {
	if a == nil || len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
