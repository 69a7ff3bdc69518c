// Package transport is Brainy's RPC between nodes and from edges to cores:
// small binary requests and answers over QUIC (quic-go), always TLS 1.3 with
// mutual authentication against the cluster CA (see transport/pki), plus
// messages the server pushes to connected clients.
//
// # Model
//
// A Server registers a HandlerFunc per method (a uint16 the application
// defines) and serves. A Client keeps one QUIC connection per server
// address and runs concurrent calls on separate streams of that connection,
// so calls are multiplexed without head-of-line blocking and a slow call
// does not hold up others. A stream carries one exchange at a time:
//
//	client                                   server (one goroutine per stream)
//	stream ── request(method, body) ──────────▶ handler(ctx, peer, body)
//	       ◀── response(body) | error(code, message) ──
//	       ── next request on the same stream ──▶ ...
//
// Streams are kept for the next call once an exchange completes (up to 64
// idle streams per connection), which saves opening a stream per call: a
// round trip costs about a dozen allocations instead of seventy. A stream
// whose call was cancelled or failed is reset and never reused.
//
// Frames are a 9-byte header (kind, method, error code, body length) and a
// body of at most MaxFrameBytes; the limit is checked on the header before
// anything is allocated, and an oversized frame resets its stream
// (ErrFrameTooLarge on both sides) while the connection carries on.
//
// Two variations save packets where many small exchanges go to one peer.
// Client.CallCoalesced lets two calls per address be on the wire; calls
// made meanwhile queue and leave together in one batch frame, the server
// running each through its own handler and answering each as it finishes
// (batch.go) — how a core forwards writes to a partition's leader. A
// Sender writes one-way messages on a stream of its own, which the server
// hands to the handler in order and never answers (sender.go) — how raft's
// messages travel, since they carry their own acknowledgements.
//
// Pushes run the same exchange in the other direction: the server opens
// streams on the client's connection (Peer.Push) and the client's PushFunc
// answers. Subscribe + push is: the client calls a "subscribe" method, the
// handler keeps the *Peer it receives, later pushes to it and drops it when
// Peer.Done is closed; the client resubscribes from OnConnect, which runs
// after every (re)connect.
//
// # Deadlines and cancellation
//
// Call honours its context. When the context ends first, the stream is reset
// in both directions; the server's handler sees its context cancelled, and
// Call returns the context's error. A connection's loss cancels the contexts
// of all handlers on it.
//
// # Connections and failure
//
// Connections are dialled on first use and dropped when lost; the next Call
// dials again, so a restarted server is reached transparently. A Call whose
// request was not sent, because the pooled connection or stream turned out
// to be dead, is retried once on a fresh one; one that may have reached the
// server's handler is not retried and fails with ErrUnavailable. OnDisconnect reports a lost connection at once when the
// server closes it or restarts (servers answer packets of connections they
// no longer know with a stateless reset keyed to their certificate), and
// after IdleTimeout when it silently disappears.
//
// # Security
//
// Every connection is QUIC with TLS 1.3 and ALPN "brainy/1". The Server
// requires a client certificate that chains to the cluster CA; the Client
// verifies the server's certificate the same way. The peer's node name
// (its certificate's common name) is Peer.ID. A connection without valid
// cluster credentials fails its handshake: the caller gets
// ErrUnauthenticated and no handler runs. transport/pki creates the CA and
// node certificates on a node's first start. Config.JoinToken adds a
// cluster secret on top: the client proves it on its first stream with an
// HMAC bound to the TLS session, and the server closes connections that
// don't.
//
// # Shutdown
//
// Server.Shutdown drains: requests arriving from then on are refused with
// CodeShuttingDown (ErrUnavailable for the caller, with the guarantee that
// the handler did not run, so another node may be asked), running handlers
// finish, then connections close and clients get OnDisconnect at once.
// Server.Close does not wait: running handlers see their contexts
// cancelled and their callers get ErrUnavailable.
//
// # Errors
//
// Every error starts with "transport: " and matches one of ErrUnavailable,
// ErrUnauthenticated, ErrFrameTooLarge, ErrRemote, ErrProtocol, ErrClosed,
// or the context's error, with errors.Is.
package transport
