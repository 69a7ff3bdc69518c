package multiraft

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/soullabs/brainy/core/raftlog"
	"github.com/soullabs/brainy/tiers"
)

// Config configures a Node. Zero fields take the defaults given.
type Config struct {
	// ID is this node's replica id in every group. Required, not 0.
	ID NodeID
	// Store is the node's store: the state machine's writes go to it
	// (StateMachine.Flush), and so does the raft log when Log is nil.
	// Required.
	Store tiers.Store
	// Log, when set, holds the raft log of every group — entries, hard
	// states, compaction points — in place of keys in Store: a dedicated
	// append-only log on a local disk (package raftlog), for a node whose
	// store is a local directory. New moves a log an earlier version kept
	// in Store into it (see migrate). The node does not close it; its
	// opener does, after Node.Close. Nil: the log is kept in Store (a node
	// on an object store, which has no local disk for it).
	Log *raftlog.Log
	// Transport sends messages to peers. Required.
	Transport Transport
	// StateMachine applies committed commands. Required.
	StateMachine StateMachine
	// TickInterval is raft's clock. Default 20 ms. With the default ticks,
	// a follower that hears nothing from its leader campaigns after 200 to
	// 400 ms (raft randomises within [ElectionTicks, 2×ElectionTicks)), so
	// a dead leader is replaced well within a second.
	TickInterval time.Duration
	// ElectionTicks is the election timeout in ticks. Default 10.
	ElectionTicks int
	// HeartbeatTicks is the leader's heartbeat period in ticks. Default 1.
	HeartbeatTicks int
	// MaxSizePerMsg bounds the entries' bytes in one append message.
	// Default 1 MiB.
	MaxSizePerMsg uint64
	// MaxInflightMsgs bounds unacknowledged append messages per follower.
	// Default 256.
	MaxInflightMsgs int
	// LogKeep is how many applied entries a group keeps in its log behind
	// the state machine, so that a briefly lagging replica catches up from
	// the log; one further behind gets a snapshot. The log is compacted
	// when it holds twice as many. Default 10,000.
	LogKeep int
	// NoQuiesce keeps every group ticking and heartbeating when idle (see
	// quiesce.go). Default false: idle groups quiesce.
	NoQuiesce bool
	// AcceptGroup decides whether a message for a group that is not open
	// here creates it, empty, to be filled by its leader (how a node gains
	// a replica that another node's leader added). Nil: never.
	AcceptGroup func(GroupID) bool
	// Logger receives the node's and raft's events. Nil discards them.
	Logger *slog.Logger

	// wrapLog, set by tests, wraps where the node keeps its raft log.
	wrapLog func(logStore) logStore
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = 20 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = 1 << 20
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = 256
	}
	if c.LogKeep == 0 {
		c.LogKeep = 10000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	if c.ID == 0 {
		errs = append(errs, errors.New("ID must not be 0"))
	}
	if c.Store == nil || c.Transport == nil || c.StateMachine == nil {
		errs = append(errs, errors.New("Store, Transport and StateMachine are required"))
	}
	if c.ElectionTicks <= c.HeartbeatTicks {
		errs = append(errs, fmt.Errorf("ElectionTicks (%d) must exceed HeartbeatTicks (%d)", c.ElectionTicks, c.HeartbeatTicks))
	}
	if len(errs) > 0 {
		return fmt.Errorf("multiraft: invalid config: %w", errors.Join(errs...))
	}
	return nil
}
