package transport

import (
	"context"
	"errors"

	"github.com/quic-go/quic-go"
)

// One-way messages (Sender).
//
// A call costs an answer: a packet back, and the wait for it before the
// next call on the stream. Messages whose sender learns nothing from an
// answer — raft's, which carry their own acknowledgements — go one-way
// instead: kindMessage frames, one after another on one stream the Sender
// keeps, which the server hands to the method's handler in order and
// never answers. A handler's error is counted and dropped. QUIC's flow
// control is the back-pressure: Send blocks while the peer has not read
// what it was sent.
//
// A Sender delivers in order while its stream lives. A message whose Send
// failed may or may not have arrived, and a lost connection loses what was
// in flight: the Sender opens a new stream with the next Send. Callers
// that need to know must use Call.
//
// A peer older than one-way messages refuses the stream (a protocol
// reset, seen by the next Send; the first message is lost): the Sender
// then sends each message as a Call while that connection lasts — what a
// cluster meets in a rolling upgrade; the upgraded peer's new connection
// gets one-way messages again.

// kindMessage is a one-way request: the server answers nothing.
const kindMessage byte = 7

// Sender sends one-way messages for one method to one address, in order
// (see above). It is for one goroutine: Send and Close are not safe for
// concurrent use. Close it when done.
type Sender struct {
	c      *Client
	addr   string
	method uint16

	str *quic.Stream
	cc  *clientConn // str's connection
	buf []byte
	// calls: the peer refused one-way messages on connection refusedOn;
	// send Calls instead while that connection lasts.
	calls     bool
	refusedOn *clientConn
}

// NewSender returns a Sender of method messages to addr. It connects on
// the first Send.
func (c *Client) NewSender(addr string, method uint16) *Sender {
	return &Sender{c: c, addr: addr, method: method}
}

// Addr is the address s sends to.
func (s *Sender) Addr() string { return s.addr }

// Send writes body as one message on s's stream, opening one (and
// connecting) if needed. It returns once the frame is handed to QUIC, not
// when the peer has it. Errors are Call's; a failed Send leaves no
// partial frame: its stream is reset and the next Send opens another.
func (s *Sender) Send(ctx context.Context, body []byte) error {
	c := s.c
	c.sends.Add(1)
	if len(body) > c.cfg.MaxFrameBytes {
		c.sendErrors.Add(1)
		return callError(ctx, "send", s.addr, ErrFrameTooLarge, false)
	}
	if s.calls && c.pooled(s.addr) != s.refusedOn {
		s.calls = false // a new connection: the peer may have been upgraded
	}
	if s.calls {
		_, err := c.call(ctx, s.addr, s.method, body)
		var re *RemoteError
		if err != nil && !errors.As(err, &re) { // a handler's error is dropped, as one-way
			c.sendErrors.Add(1)
			return err
		}
		return nil
	}
	if s.str != nil && s.cc.conn.Context().Err() != nil {
		s.str = nil // the connection is gone
	}
	if s.str == nil {
		cc, err := c.get(ctx, s.addr)
		if err == nil {
			s.str, err = cc.conn.OpenStreamSync(ctx)
		}
		if err != nil {
			s.str = nil
			c.sendErrors.Add(1)
			return callError(ctx, "send", s.addr, err, false)
		}
		s.cc = cc
	}
	str := s.str
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { str.CancelWrite(streamCancelled) })
	}
	err := writeFrame(str, &s.buf, kindMessage, s.method, 0, body)
	if stop != nil && !stop() && err == nil {
		err = ctx.Err() // cancelled as it finished: the frame may be cut
	}
	if cap(s.buf) > maxPooledBuf {
		s.buf = nil
	}
	if err != nil {
		str.CancelWrite(resetCode(err))
		str.CancelRead(streamCancelled)
		s.str = nil
		if refusedFrame(err) {
			// The peer never handled this message (nor the one before,
			// which it refused): this one goes again, as a call.
			s.calls, s.refusedOn = true, s.cc
			c.log.Warn("transport: peer refuses one-way messages; sending them as calls", "addr", s.addr, "method", s.method)
			return s.Send(ctx, body)
		}
		c.sendErrors.Add(1)
		return callError(ctx, "send", s.addr, err, true)
	}
	return nil
}

// pooled returns the pooled connection to addr, nil when there is none;
// it never dials.
func (c *Client) pooled(addr string) *clientConn {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.conns[addr]
}

// Close ends s's stream; the peer's serving goroutine sees it end.
func (s *Sender) Close() {
	if s.str != nil {
		_ = s.str.Close()
		s.str.CancelRead(streamCancelled)
		s.str = nil
	}
}
