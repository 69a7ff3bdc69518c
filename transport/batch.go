package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/soullabs/brainy/internal/shrink"
)

// Coalesced calls (Client.CallCoalesced).
//
// Every call costs both sides a stream exchange: at least one packet each
// way, a wake-up of the handler's goroutine, and the syscalls that carry
// them. For many small calls to one address — a core forwarding writes to
// a partition's leader — that is a cost per call worth sharing (node 1 of
// a 3-node PUT benchmark made a third as many calls with it; see
// docs/BENCHMARKS.md). CallCoalesced lets up to coalesceSlots calls to one address be on
// the wire at once, each on its own stream as Call does; calls made while
// the slots are taken wait in a queue, and the queue leaves as one batch
// frame as soon as a slot frees. The server runs a batch's calls
// concurrently, each through the handler its method names and with the
// same verified peer, and answers each on the batch's stream as soon as
// it is done (the answer frame's method field carries the call's place in
// the batch), so a fast call never waits for a slow one. So the calls to
// one address cost about as many exchanges as there are slots per
// round trip, whatever their number; an idle caller's call goes at once.
//
// A slot frees at the first answer of its exchange, or after
// coalesceHold, whichever comes first: a call that waits seconds (a write
// to a partition without quorum) must not hold up the calls behind it.
//
// Batch request body:
//
//	count  u16                 1..maxBatchCalls
//	count × (method u16, length u32, body)
//
// Answers: count frames, kindResponse or kindError, one per call in any
// order, method = the call's index. The server bounds the handlers that
// batches run at once per connection (Config.MaxConcurrentStreams), so a
// batch cannot multiply what a peer may run beyond what its streams
// allow. A server older than batch frames refuses them whole (an unknown
// frame kind resets the stream before any call runs): the refused calls go
// again one by one, and so do all later calls to that address — a rolling
// upgrade keeps working.
const (
	kindBatch byte = 6

	// maxBatchCalls bounds the calls one batch carries.
	maxBatchCalls = 64
	// maxBatchBytes bounds a batch's body; a call larger than
	// coalesceLimit goes alone.
	maxBatchBytes = 1 << 20
	// coalesceSlots is how many exchanges per address CallCoalesced keeps
	// on the wire before it queues calls. Two keep the peer busy while an
	// answer travels back.
	coalesceSlots = 2
	// batchCallHeader is a call's header in a batch: method and length.
	batchCallHeader = 6
)

// coalesceHold bounds how long one exchange holds its slot (a variable
// for tests).
var coalesceHold = 2 * time.Millisecond

// coalescer is one address's CallCoalesced state. Invariant: calls queue
// only while every slot is taken.
type coalescer struct {
	mu    sync.Mutex
	used  int
	queue []*coalescedCall
	// plain: the peer refused a batch frame (it is older than them): its
	// calls go one by one — until the connection goes, and the coalescer
	// with it (dropCoalescer). Guarded by mu.
	plain bool
}

// coalescedCall is a call waiting in a coalescer's queue or riding in a
// batch. resp and err are written before done is closed.
type coalescedCall struct {
	ctx    context.Context
	method uint16
	req    []byte
	done   chan struct{}
	resp   []byte
	err    error
	// taken is set (under the coalescer's lock) when the call leaves the
	// queue in a batch; a caller that gives up before then removes it.
	taken bool
	// answered is set, by the batch's goroutine alone, once done is
	// closed.
	answered bool
}

// CallCoalesced is Call for many small concurrent calls to one address,
// such as writes one core forwards to another: while coalesceSlots
// exchanges with addr are under way, further calls wait and then share
// one batch frame (see above). Same answers, errors and ErrNotSent
// guarantee as Call; a call whose context ends while it waits in the
// queue was not sent. A call given up after its batch left may still run
// on the server (its handler's context is not cancelled), as a Call whose
// request was delivered may.
func (c *Client) CallCoalesced(ctx context.Context, addr string, method uint16, req []byte) ([]byte, error) {
	if len(req) > coalesceLimit {
		return c.Call(ctx, addr, method, req)
	}
	co := c.coalescerOf(addr)
	if co == nil {
		return nil, callError(ctx, "call", addr, ErrClosed, false)
	}
	co.mu.Lock()
	if co.plain {
		co.mu.Unlock()
		return c.Call(ctx, addr, method, req)
	}
	if co.used < coalesceSlots {
		co.used++
		co.mu.Unlock()
		release := co.hold(c, addr)
		resp, err := c.Call(ctx, addr, method, req)
		release()
		return resp, err
	}
	call := &coalescedCall{ctx: ctx, method: method, req: req, done: make(chan struct{})}
	co.queue = append(co.queue, call)
	co.mu.Unlock()
	c.calls.Add(1)
	select {
	case <-call.done:
		return call.resp, call.err
	case <-ctx.Done():
	}
	co.mu.Lock()
	taken := call.taken
	if !taken {
		for i, q := range co.queue {
			if q == call {
				co.queue = append(co.queue[:i], co.queue[i+1:]...)
				break
			}
		}
	}
	co.mu.Unlock()
	c.callErrors.Add(1)
	return nil, callError(ctx, "call", addr, ctx.Err(), taken)
}

// coalescerOf returns addr's coalescer, made on first use; nil once the
// client is closed. Coalescers live as long as their address's pooled
// connection entry and are dropped with it.
func (c *Client) coalescerOf(addr string) *coalescer {
	c.mu.RLock()
	co := c.coalescers[addr]
	c.mu.RUnlock()
	if co != nil {
		return co
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	if co = c.coalescers[addr]; co == nil {
		co = &coalescer{}
		c.coalescers[addr] = co
	}
	return co
}

// dropCoalescer forgets addr's coalescer; c.mu must be held. Calls in its
// queue are still sent: they hold the coalescer itself.
func (c *Client) dropCoalescer(addr string) {
	if _, ok := c.coalescers[addr]; ok {
		delete(c.coalescers, addr)
		c.coalescers = shrink.Map(c.coalescers, &c.coPeak)
	}
}

// hold returns the function that frees the slot just taken: at most once,
// at the first call, or coalesceHold from now. Freeing it sends what
// queued meanwhile.
func (co *coalescer) hold(c *Client, addr string) (release func()) {
	var once sync.Once
	free := func() { once.Do(func() { co.free(c, addr) }) }
	t := time.AfterFunc(coalesceHold, free)
	return func() {
		t.Stop()
		free()
	}
}

// free returns a slot and, while slots are free, sends the queue in
// batches.
func (co *coalescer) free(c *Client, addr string) {
	co.mu.Lock()
	co.used--
	for len(co.queue) > 0 && co.used < coalesceSlots {
		n, size := 0, 0
		for n < len(co.queue) && n < maxBatchCalls {
			size += batchCallHeader + len(co.queue[n].req)
			if n > 0 && size > maxBatchBytes {
				break
			}
			n++
		}
		calls := make([]*coalescedCall, n)
		copy(calls, co.queue)
		for _, call := range calls {
			call.taken = true
		}
		co.queue = append(co.queue[:0], co.queue[n:]...)
		co.used++
		go c.sendBatch(co, addr, calls)
	}
	if len(co.queue) == 0 && cap(co.queue) > 4*maxBatchCalls {
		co.queue = nil // a burst is over: do not keep its peak
	}
	co.mu.Unlock()
}

// sendBatch sends calls, taken from co's queue, as one exchange and hands
// each its answer; it frees the slot it was given.
func (c *Client) sendBatch(co *coalescer, addr string, calls []*coalescedCall) {
	release := co.hold(c, addr)
	defer release()
	if len(calls) == 1 {
		call := calls[0]
		call.resp, call.err = c.call(call.ctx, addr, call.method, call.req)
		call.answered = true
		close(call.done)
		return
	}
	c.batches.Add(1)
	ctx, cancel := batchContext(calls)
	defer cancel()
	body := appendBatch(nil, calls)
	sent, err := c.onConn(ctx, addr, func(cc *clientConn) (bool, error) {
		return batchTrip(ctx, cc.streams, body, calls, c.cfg.MaxFrameBytes, release)
	})
	switch {
	case err == nil:
	case refusedFrame(err) && !slices.ContainsFunc(calls, func(call *coalescedCall) bool { return call.answered }):
		// A peer older than batch frames refused this one whole: none of
		// its calls ran. From now on they go one by one.
		co.mu.Lock()
		co.plain = true
		co.mu.Unlock()
		c.log.Warn("transport: peer refuses batch frames; calling it one call at a time", "addr", addr)
		c.callsAlone(addr, calls)
	default:
		c.failBatch(calls, addr, err, sent)
	}
}

// callsAlone sends each of calls as a call of its own, at once, and hands
// each its answer.
func (c *Client) callsAlone(addr string, calls []*coalescedCall) {
	var wg sync.WaitGroup
	for _, call := range calls {
		wg.Go(func() {
			call.resp, call.err = c.call(call.ctx, addr, call.method, call.req)
			call.answered = true
			close(call.done)
		})
	}
	wg.Wait()
}

// failBatch answers every call of a batch not answered yet with err.
func (c *Client) failBatch(calls []*coalescedCall, addr string, err error, sent bool) {
	for _, call := range calls {
		if call.answered {
			continue
		}
		c.callErrors.Add(1)
		call.err = callError(call.ctx, "call", addr, err, sent)
		call.answered = true
		close(call.done)
	}
}

// batchContext is the context a batch runs under: it ends when every
// call's context has ended, or at the latest deadline among them.
func batchContext(calls []*coalescedCall) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, call := range calls {
		d, ok := call.ctx.Deadline()
		if !ok {
			latest = time.Time{}
			break
		}
		if d.After(latest) {
			latest = d
		}
	}
	if latest.IsZero() {
		return context.WithCancel(context.Background())
	}
	return context.WithDeadline(context.Background(), latest)
}

// appendBatch appends the body of a batch frame carrying calls.
func appendBatch(dst []byte, calls []*coalescedCall) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(calls)))
	for _, call := range calls {
		dst = binary.BigEndian.AppendUint16(dst, call.method)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(call.req)))
		dst = append(dst, call.req...)
	}
	return dst
}

// batchTrip runs one batch exchange on a pooled stream: it writes the
// batch frame and reads one answer per call, handing each to its call as
// it arrives (the first one calls release). sent reports whether the
// batch may have reached the peer.
//
// Calls answered are marked, so failBatch answers only the rest.
func batchTrip(ctx context.Context, pool *streamPool, body []byte, calls []*coalescedCall, maxBody int, release func()) (sent bool, err error) {
	if len(body) > maxBody {
		return false, ErrFrameTooLarge
	}
	str, err := pool.get(ctx)
	if err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() {
		str.CancelWrite(streamCancelled)
		str.CancelRead(streamCancelled)
	})
	bp := getBuf()
	sent, err = batchExchange(str, bp, body, calls, maxBody, release)
	putBuf(bp)
	reusable := err == nil
	if !stop() {
		reusable = false // the AfterFunc ran or is running: the stream is reset
	}
	if reusable {
		pool.put(str)
	} else if err != nil {
		code := resetCode(err)
		str.CancelWrite(code)
		str.CancelRead(code)
	}
	return sent, err
}

func batchExchange(str *quic.Stream, bp *[]byte, body []byte, calls []*coalescedCall, maxBody int, release func()) (sent bool, err error) {
	if err := writeFrame(str, bp, kindBatch, 0, 0, body); err != nil {
		return false, err
	}
	for range calls {
		h, err := readHeader(str, (*bp)[:cap(*bp)], maxBody)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return true, err
		}
		if (h.kind != kindResponse && h.kind != kindError) || int(h.method) >= len(calls) || calls[h.method].answered {
			return true, errBadKind
		}
		resp, err := readBody(str, h, nil)
		if err != nil {
			return true, err
		}
		call := calls[h.method]
		if h.kind == kindError {
			call.err = &RemoteError{Code: h.code, Message: string(resp)}
		} else {
			call.resp = resp
		}
		call.answered = true
		close(call.done)
		release()
	}
	return true, nil
}

// decodeBatch splits a batch body into its calls, checking every length;
// the bodies alias b.
func decodeBatch(b []byte) (methods []uint16, bodies [][]byte, err error) {
	if len(b) < 2 {
		return nil, nil, ErrProtocol
	}
	n := int(binary.BigEndian.Uint16(b))
	if n == 0 || n > maxBatchCalls {
		return nil, nil, ErrProtocol
	}
	b = b[2:]
	methods, bodies = make([]uint16, n), make([][]byte, n)
	for i := range n {
		if len(b) < batchCallHeader {
			return nil, nil, ErrProtocol
		}
		methods[i] = binary.BigEndian.Uint16(b)
		size := binary.BigEndian.Uint32(b[2:])
		b = b[batchCallHeader:]
		if uint64(size) > uint64(len(b)) {
			return nil, nil, ErrProtocol
		}
		bodies[i], b = b[:size:size], b[size:]
	}
	if len(b) != 0 {
		return nil, nil, ErrProtocol
	}
	return methods, bodies, nil
}

// batchAnswer is one call's answer on its way to the stream's writer.
type batchAnswer struct {
	index int
	resp  []byte
	err   error
}

// serveBatch runs the calls of one batch frame concurrently, at most
// slots' capacity at once across the connection, and writes each answer
// to str as it comes. It returns the error that ends the stream, if any.
func serveBatch(ctx context.Context, str *quic.Stream, wp *[]byte, body []byte, maxBody int, dispatch dispatchFunc, slots chan struct{}, counters *streamCounters, log *slog.Logger) error {
	methods, bodies, err := decodeBatch(body)
	if err != nil {
		counters.rejected.Add(1)
		log.Debug("transport: rejected batch frame", "error", err, "length", len(body))
		return errBadKind
	}
	counters.batches.Add(1)
	answers := make(chan batchAnswer, len(methods))
	started := 0
	for i := range methods {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		started++
		counters.exchanges.Add(1)
		go func() {
			defer func() { <-slots }()
			resp, err := safeDispatch(ctx, dispatch, methods[i], bodies[i], counters, log)
			answers <- batchAnswer{i, resp, err}
		}()
	}
	var werr error
	for range started {
		a := <-answers
		if werr != nil || ctx.Err() != nil {
			continue // drain: the calls' bodies alias the request buffer
		}
		werr = writeAnswer(str, wp, uint16(a.index), a.resp, a.err, maxBody, counters, log)
	}
	if werr == nil && ctx.Err() != nil {
		werr = ctx.Err()
	}
	return werr
}

// writeAnswer writes one exchange's answer frame (the answer, or the
// handler's error) with method as its method field.
func writeAnswer(str *quic.Stream, wp *[]byte, method uint16, resp []byte, herr error, maxBody int, counters *streamCounters, log *slog.Logger) error {
	if herr != nil {
		counters.errors.Add(1)
		code, msg := CodeInternal, ""
		var re *RemoteError
		if errors.As(herr, &re) {
			code, msg = re.Code, re.Message
		} else {
			msg = herr.Error()
		}
		if len(msg) > maxBody {
			msg = msg[:maxBody]
		}
		return writeFrame(str, wp, kindError, method, code, []byte(msg))
	}
	if len(resp) > maxBody {
		log.Warn("transport: answer exceeds MaxFrameBytes; stream reset", "method", method, "length", len(resp), "max_frame_bytes", maxBody)
		return ErrFrameTooLarge
	}
	return writeFrame(str, wp, kindResponse, method, 0, resp)
}
