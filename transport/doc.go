// Package transport is Brainy's RPC between nodes and from edges to cores:
// small binary requests and answers over QUIC (quic-go), always TLS 1.3 with
// mutual authentication against the cluster CA (see transport/pki), plus
// messages the server pushes to connected clients.
//
// # Model
//
// A Server registers a HandlerFunc per method (a uint16 the application
// defines) and serves. A Client keeps one QUIC connection per server
// address and runs every Call on its own stream of that connection, so
// calls are multiplexed without head-of-line blocking and a slow call does
// not hold up others. Each stream carries exactly one frame each way:
//
//	client                                server
//	open stream ── request(method, body) FIN ──▶ handler(ctx, peer, body)
//	            ◀── response(body) or error(code, message) FIN ──
//
// Frames are a 9-byte header (kind, method, error code, body length) and a
// body of at most MaxFrameBytes; the limit is checked on the header before
// anything is allocated, and an oversized frame resets the stream
// (ErrFrameTooLarge on both sides).
//
// Pushes run the same exchange in the other direction: the server opens a
// stream on the client's connection (Peer.Push) and the client's PushFunc
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
// stream could not even be opened on a dead pooled connection is retried
// once; one that may have reached the server is not, and fails with
// ErrUnavailable. OnDisconnect reports a lost connection at once when the
// server closes it or restarts (servers answer packets of connections they
// no longer know with a stateless reset keyed to their certificate), and
// after IdleTimeout when it silently disappears.
//
// # Errors
//
// Every error starts with "transport: " and matches one of ErrUnavailable,
// ErrUnauthenticated, ErrFrameTooLarge, ErrRemote, ErrProtocol, ErrClosed,
// or the context's error, with errors.Is.
package transport
