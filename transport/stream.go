package transport

import (
	"context"
	"errors"
	"log/slog"

	"github.com/quic-go/quic-go"
)

// Frames up to this size are encoded with their header into one pooled
// buffer and written at once; larger bodies are written after the header
// without a copy.
const coalesceLimit = 16 << 10

// roundTrip opens a stream on conn, sends one frame of the given kind and
// reads the answer. sent reports whether the stream was opened, so the
// request may have reached the peer. When ctx ends first, the stream is
// reset in both directions, which cancels the handler's context on the
// peer.
//
// The happy path starts no goroutine; with a cancellable ctx it registers
// one context.AfterFunc.
func roundTrip(ctx context.Context, conn *quic.Conn, kind byte, method uint16, body []byte, maxBody int) (resp []byte, sent bool, err error) {
	if len(body) > maxBody {
		return nil, false, ErrFrameTooLarge
	}
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, false, err
	}
	if ctx.Done() != nil {
		stop := context.AfterFunc(ctx, func() {
			str.CancelWrite(streamCancelled)
			str.CancelRead(streamCancelled)
		})
		defer stop()
	}
	if err := writeFrame(str, kind, method, 0, body); err != nil {
		str.CancelRead(streamCancelled)
		return nil, true, err
	}
	h, resp, err := readFrame(str, nil, maxBody)
	if err != nil {
		str.CancelRead(resetCode(err))
		return nil, true, err
	}
	switch {
	case h.kind == kindResponse && h.method == method:
		return resp, true, nil
	case h.kind == kindError && h.method == method:
		return nil, true, &RemoteError{Code: h.code, Message: string(resp)}
	}
	str.CancelRead(streamProtocol)
	return nil, true, errBadKind
}

// writeFrame writes one frame and closes the send side of str.
func writeFrame(str *quic.Stream, kind byte, method, code uint16, body []byte) error {
	if len(body) <= coalesceLimit {
		bp := getBuf()
		b := appendFrame((*bp)[:0], kind, method, code, body)
		_, err := str.Write(b)
		*bp = b
		putBuf(bp)
		if err != nil {
			return err
		}
	} else {
		var hb [headerLen]byte
		appendFrame(hb[:0], kind, method, code, nil)
		// The length field must count the body that follows.
		hb[5], hb[6], hb[7], hb[8] = byte(len(body)>>24), byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
		if _, err := str.Write(hb[:]); err != nil {
			return err
		}
		if _, err := str.Write(body); err != nil {
			return err
		}
	}
	return str.Close()
}

// resetCode is the stream error code that tells the peer why this side
// gave up on a stream after err.
func resetCode(err error) quic.StreamErrorCode {
	switch {
	case errors.Is(err, ErrFrameTooLarge):
		return streamFrameTooLarge
	case errors.Is(err, errBadKind), errors.Is(err, errTrailing):
		return streamProtocol
	}
	return streamCancelled
}

// dispatchFunc handles one incoming frame's body; body is valid only until
// it returns.
type dispatchFunc func(ctx context.Context, method uint16, body []byte) ([]byte, error)

// serveStream reads one frame of kind want from str, runs dispatch and
// writes its answer. The context passed to dispatch is the stream's: it is
// cancelled when the caller resets the stream (its context ended) or the
// connection closes.
func serveStream(str *quic.Stream, want byte, maxBody int, dispatch dispatchFunc, log *slog.Logger) {
	bp := getBuf()
	defer putBuf(bp)
	h, body, err := readFrame(str, (*bp)[:0], maxBody)
	if cap(body) > cap(*bp) {
		*bp = body[:0]
	}
	if err == nil && h.kind != want {
		err = errBadKind
	}
	if err != nil {
		code := resetCode(err)
		if code != streamCancelled {
			log.Debug("transport: rejected incoming frame", "error", err, "method", h.method, "length", h.length)
		}
		str.CancelRead(code)
		str.CancelWrite(code)
		return
	}
	ctx := str.Context()
	resp, herr := safeDispatch(ctx, dispatch, h.method, body, log)
	if ctx.Err() != nil {
		// The caller reset the stream or the connection is gone: nobody
		// reads an answer.
		str.CancelWrite(streamCancelled)
		return
	}
	if herr != nil {
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
		if err := writeFrame(str, kindError, h.method, code, []byte(msg)); err != nil {
			str.CancelWrite(streamCancelled)
		}
		return
	}
	if len(resp) > maxBody {
		log.Warn("transport: answer exceeds MaxFrameBytes; stream reset", "method", h.method, "length", len(resp), "max_frame_bytes", maxBody)
		str.CancelWrite(streamFrameTooLarge)
		return
	}
	if err := writeFrame(str, kindResponse, h.method, 0, resp); err != nil {
		str.CancelWrite(streamCancelled)
	}
}

// safeDispatch runs dispatch and turns a panic into a CodeInternal error.
func safeDispatch(ctx context.Context, dispatch dispatchFunc, method uint16, body []byte, log *slog.Logger) (resp []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("transport: handler panicked", "method", method, "panic", r)
			resp, err = nil, &RemoteError{Code: CodeInternal, Message: "handler panicked"}
		}
	}()
	return dispatch(ctx, method, body)
}
