package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strconv"

	"github.com/quic-go/quic-go"
)

// Sentinels that classify every error this package returns; test with
// errors.Is.
var (
	// ErrUnavailable: the peer could not be reached, or the connection was
	// lost before the answer arrived. Whether the peer handled the request
	// is then unknown.
	ErrUnavailable = errors.New("transport: peer unavailable")
	// ErrFrameTooLarge: a request, response or push exceeded MaxFrameBytes,
	// on this side or on the peer's.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrRemote: the peer's handler returned an error; errors.As to
	// *RemoteError gives its code and message.
	ErrRemote = errors.New("transport: remote error")
	// ErrUnauthenticated: the TLS handshake failed because this side or the
	// peer lacks valid cluster credentials.
	ErrUnauthenticated = errors.New("transport: unauthenticated")
	// ErrProtocol: the peer sent something that is not a valid frame.
	ErrProtocol = errors.New("transport: protocol violation")
	// ErrClosed: the Client or Server was closed.
	ErrClosed = errors.New("transport: closed")
	// ErrNotSent accompanies another sentinel when the request provably
	// never reached the peer's handler (no connection, or no complete frame
	// written): it is then safe to send it elsewhere, even a write. A
	// failed call without it may have been handled.
	ErrNotSent = errors.New("transport: request not sent")
)

// Error codes carried in error frames. Codes below CodeUser are reserved for
// the transport; handlers choose codes from CodeUser up.
const (
	// CodeInternal: the handler returned an error that is not a
	// *RemoteError, or panicked.
	CodeInternal uint16 = 1
	// CodeUnknownMethod: no handler is registered for the method.
	CodeUnknownMethod uint16 = 2
	// CodeShuttingDown: the server is draining (Server.Shutdown) and did
	// not run the handler; the request can safely go to another node.
	// Such errors also match ErrUnavailable.
	CodeShuttingDown uint16 = 3
	// CodeUser is the first code free for applications.
	CodeUser uint16 = 16
)

// RemoteError is an error returned by the peer's handler. A handler returns
// a *RemoteError to choose the code the caller sees; any other error reaches
// the caller with CodeInternal and its message. errors.Is(err, ErrRemote)
// holds for every *RemoteError.
type RemoteError struct {
	// Code classifies the error; see CodeInternal and CodeUser.
	Code uint16
	// Message is the handler's error text.
	Message string
}

// Error implements error.
func (e *RemoteError) Error() string {
	return "transport: remote error " + strconv.Itoa(int(e.Code)) + ": " + e.Message
}

// Is makes errors.Is(err, ErrRemote) true, and errors.Is(err,
// ErrUnavailable) for CodeShuttingDown.
func (e *RemoteError) Is(target error) bool {
	return target == ErrRemote || (target == ErrUnavailable && e.Code == CodeShuttingDown)
}

// Stream error codes sent in RESET_STREAM and STOP_SENDING.
const (
	streamCancelled     quic.StreamErrorCode = 1 // the caller gave up (context done)
	streamFrameTooLarge quic.StreamErrorCode = 2 // a frame exceeded the receiver's or sender's limit
	streamProtocol      quic.StreamErrorCode = 3 // not a valid frame
	streamShutdown      quic.StreamErrorCode = 4 // the side is closing
)

// Connection close codes.
const (
	connClosed          quic.ApplicationErrorCode = 0 // orderly close
	connUnauthenticated quic.ApplicationErrorCode = 1 // join token missing or wrong
)

// callError wraps err from a round trip with addr and a sentinel. ctx errors
// win: a caller whose context ended sees ctx.Err() wrapped.
func callError(ctx context.Context, op, addr string, err error, sent bool) error {
	if cerr := ctx.Err(); cerr != nil {
		return &opError{op: op, addr: addr, err: cerr, notSent: !sent}
	}
	return &opError{op: op, addr: addr, kind: classify(err), err: err, notSent: !sent}
}

// classify maps an error from quic-go or the frame reader to a sentinel.
func classify(err error) error {
	if errors.Is(err, errJoinToken) {
		return ErrUnauthenticated
	}
	var se *quic.StreamError
	if errors.As(err, &se) {
		switch se.ErrorCode {
		case streamFrameTooLarge:
			return ErrFrameTooLarge
		case streamProtocol:
			return ErrProtocol
		}
		return ErrUnavailable
	}
	var te *quic.TransportError
	if errors.As(err, &te) && te.ErrorCode.IsCryptoError() {
		return ErrUnauthenticated
	}
	var ae *quic.ApplicationError
	if errors.As(err, &ae) && ae.Remote && ae.ErrorCode == connUnauthenticated {
		return ErrUnauthenticated
	}

	var (
		ua  x509.UnknownAuthorityError
		cve *tls.CertificateVerificationError
		al  tls.AlertError
	)
	if errors.As(err, &ua) || errors.As(err, &cve) || errors.As(err, &al) {
		return ErrUnauthenticated
	}
	switch {
	case errors.Is(err, ErrFrameTooLarge), errors.Is(err, ErrUnauthenticated),
		errors.Is(err, ErrClosed), errors.Is(err, ErrRemote):
		return nil // already classified
	case errors.Is(err, errBadKind), errors.Is(err, io.ErrUnexpectedEOF):
		return ErrProtocol
	case errors.Is(err, net.ErrClosed):
		return ErrUnavailable
	}
	return ErrUnavailable
}

// opError is the error returned by Call and Push: "transport: <op> <addr>:
// <sentinel>: <cause>". It unwraps to both the sentinel and the cause.
type opError struct {
	op, addr string
	kind     error // sentinel, or nil when err already is one
	err      error
	notSent  bool // the request never reached the peer's handler: unwraps to ErrNotSent
}

func (e *opError) Error() string {
	s := "transport: " + e.op + " " + e.addr + ": "
	if e.kind != nil {
		s += trimPrefix(e.kind.Error()) + ": "
	}
	return s + trimPrefix(e.err.Error())
}

func (e *opError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	errs = append(errs, e.err)
	if e.notSent {
		errs = append(errs, ErrNotSent)
	}
	return errs
}

func trimPrefix(s string) string {
	const p = "transport: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// refusedFrame reports whether err is the peer resetting a stream because
// what was written on it is no frame it takes: from a peer older than
// batch frames and one-way messages, the sign that it handled none of it.
func refusedFrame(err error) bool {
	var se *quic.StreamError
	return errors.As(err, &se) && se.Remote && se.ErrorCode == streamProtocol
}
