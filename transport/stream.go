package transport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime/debug"

	"github.com/quic-go/quic-go"
)

// Frames up to this size are encoded with their header into one pooled
// buffer and written at once; larger bodies are written after the header
// without a copy.
const coalesceLimit = 16 << 10

// maxIdleStreams is how many idle streams a connection keeps per direction
// for reuse. More concurrent calls open more streams (up to
// MaxConcurrentStreams); those beyond this many are closed after their
// call.
const maxIdleStreams = 64

// streamPool holds the idle streams this side opened on one connection.
//
// Streams are reused for one exchange after another, like keep-alive
// connections in HTTP/1.1, because opening a QUIC stream per call costs
// about forty allocations and extra frames on both sides. A stream is
// reused only after a complete exchange; one whose call was cancelled,
// failed or exceeded a limit is reset and dropped, so a reset still
// reaches exactly the one call it belongs to.
//
// Idle streams count against the peer's MaxConcurrentStreams, so a caller
// that finds the limit reached waits for whichever comes first: a stream
// another call hands back, or new stream credit from the peer.
type streamPool struct {
	conn *quic.Conn
	idle chan *quic.Stream // Invariant: every stream in it is between exchanges
}

func newStreamPool(conn *quic.Conn) *streamPool {
	return &streamPool{conn: conn, idle: make(chan *quic.Stream, maxIdleStreams)}
}

func (p *streamPool) get(ctx context.Context) (*quic.Stream, error) {
	select {
	case s := <-p.idle:
		return s, nil
	default:
	}
	s, err := p.conn.OpenStream()
	if err == nil || !isStreamLimit(err) {
		return s, err
	}
	return p.wait(ctx)
}

// isStreamLimit reports whether err says the peer's stream limit is reached
// (quic-go returns it as a pointer; accept the value too).
func isStreamLimit(err error) bool {
	return errors.As(err, new(*quic.StreamLimitReachedError)) || errors.As(err, new(quic.StreamLimitReachedError))
}

// wait is get's slow path at the peer's stream limit.
func (p *streamPool) wait(ctx context.Context) (*quic.Stream, error) {
	type opened struct {
		s   *quic.Stream
		err error
	}
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := make(chan opened, 1)
	go func() {
		s, err := p.conn.OpenStreamSync(octx)
		ch <- opened{s, err}
	}()
	select {
	case s := <-p.idle:
		cancel()
		go func() {
			// Keep a stream opened meanwhile for later calls.
			if o := <-ch; o.err == nil {
				p.put(o.s)
			}
		}()
		return s, nil
	case o := <-ch:
		return o.s, o.err
	}
}

func (p *streamPool) put(s *quic.Stream) {
	if p.conn.Context().Err() == nil {
		select {
		case p.idle <- s:
			return
		default:
		}
	}
	// Finish the stream: FIN our side, and stop reading theirs; the peer's
	// serving loop sees EOF between exchanges and closes its side.
	_ = s.Close()
	s.CancelRead(streamCancelled)
}

// roundTrip runs one exchange on a pooled stream of the connection: it
// sends one frame of the given kind and reads the answer. sent reports
// whether the request may have reached the peer's handler; when it is
// false the call can be retried safely. When ctx ends first, the stream is
// reset in both directions, which cancels the handler's context on the
// peer.
//
// The happy path starts no goroutine and, with a context that cannot be
// cancelled, allocates only the returned answer; a cancellable ctx adds one
// context.AfterFunc registration.
func roundTrip(ctx context.Context, pool *streamPool, kind byte, method uint16, body []byte, maxBody int) (resp []byte, sent bool, err error) {
	if len(body) > maxBody {
		return nil, false, ErrFrameTooLarge
	}
	str, err := pool.get(ctx)
	if err != nil {
		return nil, false, err
	}
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() {
			str.CancelWrite(streamCancelled)
			str.CancelRead(streamCancelled)
		})
	}
	bp := getBuf()
	resp, sent, err = exchange(str, bp, kind, method, body, maxBody)
	putBuf(bp)
	// A remote error is a complete exchange too: the stream is fine.
	_, remote := err.(*RemoteError)
	reusable := err == nil || remote
	if stop != nil && !stop() {
		reusable = false // the AfterFunc ran or is running: the stream is reset
	}
	if reusable {
		pool.put(str)
	} else if err != nil && !remote {
		code := resetCode(err)
		str.CancelWrite(code)
		str.CancelRead(code)
	}
	return resp, sent, err
}

func exchange(str *quic.Stream, bp *[]byte, kind byte, method uint16, body []byte, maxBody int) ([]byte, bool, error) {
	if err := writeFrame(str, bp, kind, method, 0, body); err != nil {
		// Nothing complete reached the peer: it handles whole frames only.
		return nil, false, err
	}
	h, err := readHeader(str, (*bp)[:cap(*bp)], maxBody)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, true, err
	}
	if h.method != method || (h.kind != kindResponse && h.kind != kindError) {
		return nil, true, errBadKind
	}
	resp, err := readBody(str, h, nil)
	if err != nil {
		return nil, true, err
	}
	if h.kind == kindError {
		return nil, true, &RemoteError{Code: h.code, Message: string(resp)}
	}
	return resp, true, nil
}

// writeFrame writes one frame to str, using the pooled buffer bp for small
// frames.
func writeFrame(str *quic.Stream, bp *[]byte, kind byte, method, code uint16, body []byte) error {
	if len(body) <= coalesceLimit {
		b := appendFrame((*bp)[:0], kind, method, code, body)
		*bp = b
		_, err := str.Write(b)
		return err
	}
	b := appendFrame((*bp)[:0], kind, method, code, nil)
	// The length field counts the body written next.
	b[5], b[6], b[7], b[8] = byte(len(body)>>24), byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
	if _, err := str.Write(b); err != nil {
		return err
	}
	_, err := str.Write(body)
	return err
}

// resetCode is the stream error code that tells the peer why this side
// gave up on a stream after err.
func resetCode(err error) quic.StreamErrorCode {
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		return streamFrameTooLarge
	case errors.Is(err, errBadKind), errors.Is(err, io.ErrUnexpectedEOF):
		return streamProtocol
	}
	return streamCancelled
}

// dispatchFunc handles one incoming frame's body; body is valid only until
// it returns.
type dispatchFunc func(ctx context.Context, method uint16, body []byte) ([]byte, error)

// serveStream serves the exchanges the peer runs on str, one after another,
// until the peer closes the stream between exchanges, resets it, or the
// connection ends. It runs on its own goroutine, one per stream, not per
// exchange.
//
// The context passed to dispatch is the stream's: it is cancelled when the
// caller resets the stream (its context ended) or the connection closes,
// and since a reset stream is never reused, it belongs to this exchange.
//
// A stream serving requests (want kindRequest) also takes batch frames
// (batch.go) and one-way messages (sender.go) when slots is not nil: the
// connection's bound on the calls batches run at once.
func serveStream(str *quic.Stream, want byte, maxBody int, dispatch dispatchFunc, slots chan struct{}, counters *streamCounters, log *slog.Logger) {
	// Requests are read into bp and answers encoded in wp, so a handler may
	// answer with its request bytes (or a slice of them).
	bp, wp := getBuf(), getBuf()
	defer func() { putBuf(bp); putBuf(wp) }()
	ctx := str.Context()
	for {
		h, err := readHeader(str, (*bp)[:cap(*bp)], maxBody)
		if err == io.EOF {
			_ = str.Close()
			return
		}
		if err == nil && h.kind != want && ((h.kind != kindBatch && h.kind != kindMessage) || slots == nil) {
			err = errBadKind
		}
		var body []byte
		if err == nil {
			body, err = readBody(str, h, (*bp)[:0])
			if cap(body) > cap(*bp) && cap(body) <= maxPooledBuf {
				*bp = body[:0]
			}
		}
		if err != nil {
			code := resetCode(err)
			if code != streamCancelled {
				counters.rejected.Add(1)
				log.Debug("transport: rejected incoming frame", "error", err, "method", h.method, "length", h.length)
			}
			str.CancelRead(code)
			str.CancelWrite(code)
			return
		}
		switch h.kind {
		case kindBatch:
			err = serveBatch(ctx, str, wp, body, maxBody, dispatch, slots, counters, log)
		case kindMessage:
			// One-way (sender.go): handled in order, never answered.
			counters.exchanges.Add(1)
			if _, herr := safeDispatch(ctx, dispatch, h.method, body, counters, log); herr != nil {
				counters.errors.Add(1)
				log.Debug("transport: one-way message refused", "method", h.method, "error", herr)
			}
			err = ctx.Err()
		default:
			counters.exchanges.Add(1)
			resp, herr := safeDispatch(ctx, dispatch, h.method, body, counters, log)
			if ctx.Err() != nil {
				// The caller reset the stream or the connection is gone:
				// nobody reads an answer.
				err = ctx.Err()
			} else {
				err = writeAnswer(str, wp, h.method, resp, herr, maxBody, counters, log)
			}
		}
		if err != nil {
			code := resetCode(err)
			str.CancelRead(code)
			str.CancelWrite(code)
			return
		}
		if cap(*wp) > maxPooledBuf {
			*wp = make([]byte, 0, minPooledBuf)
		}
	}
}

// safeDispatch runs dispatch and turns a panic into a CodeInternal error,
// logged with its stack and counted: what a peer sends must not take the
// process down. It covers the handler's own goroutine only. Work a
// handler hands to another goroutine is not covered, nor should it be
// patched up after a panic there: a raft group that panics midway
// through a message is corrupt, so multiraft checks every message before
// raft sees it instead (cluster's MethodRaft handler only queues them).
func safeDispatch(ctx context.Context, dispatch dispatchFunc, method uint16, body []byte, counters *streamCounters, log *slog.Logger) (resp []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			counters.panics.Add(1)
			log.Error("transport: handler panicked", "method", method, "panic", r, "stack", string(debug.Stack()))
			resp, err = nil, &RemoteError{Code: CodeInternal, Message: "handler panicked"}
		}
	}()
	return dispatch(ctx, method, body)
}
