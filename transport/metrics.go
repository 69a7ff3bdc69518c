package transport

import "sync/atomic"

// ServerMetrics is a snapshot of a Server's counters. Counters only grow.
type ServerMetrics struct {
	// Connections is the number of connected peers now.
	Connections int
	// ConnectionsAccepted counts authenticated connections accepted.
	ConnectionsAccepted uint64
	// Requests counts requests and one-way messages dispatched to
	// handlers (or answered with CodeUnknownMethod).
	Requests uint64
	// RequestErrors counts requests answered with an error frame, and
	// one-way messages whose handler failed.
	RequestErrors uint64
	// FramesRejected counts incoming frames refused for exceeding
	// MaxFrameBytes or being malformed; their streams were reset.
	FramesRejected uint64
	// Pushes counts Peer.Push calls; PushErrors those that failed.
	Pushes, PushErrors uint64
	// HandlerPanics counts requests whose handler panicked: each was
	// recovered, logged and answered with CodeInternal.
	HandlerPanics uint64
	// Batches counts batch frames served (Client.CallCoalesced); their
	// calls count in Requests.
	Batches uint64
}

// ClientMetrics is a snapshot of a Client's counters. Counters only grow.
type ClientMetrics struct {
	// Connections is the number of pooled connections now.
	Connections int
	// Dials counts connection attempts; DialFailures those that failed.
	Dials, DialFailures uint64
	// Disconnects counts established connections that were lost.
	Disconnects uint64
	// Calls counts Call and CallCoalesced invocations; CallErrors those
	// that failed.
	Calls, CallErrors uint64
	// Batches counts batch frames sent: calls CallCoalesced queued and
	// sent together.
	Batches uint64
	// Sends counts Sender.Send calls; SendErrors those that failed.
	Sends, SendErrors uint64
	// Pushes counts pushes received and dispatched to the push handler.
	Pushes uint64
	// FramesRejected counts incoming push frames refused for exceeding
	// MaxFrameBytes or being malformed.
	FramesRejected uint64
	// HandlerPanics counts pushes whose handler panicked (recovered and
	// logged).
	HandlerPanics uint64
}

// streamCounters are the counters serveStream updates.
type streamCounters struct {
	exchanges, errors, rejected, panics, batches atomic.Uint64
}
