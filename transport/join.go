package transport

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/quic-go/quic-go"
)

// The join token is an optional second factor on top of mutual TLS: a
// shared secret every node of the cluster is configured with. Right after
// the handshake the client opens its first stream and sends a hello frame
// whose body is HMAC-SHA256(token, keying material exported from this TLS
// session), so the proof cannot be replayed on another connection and the
// token itself never crosses the wire. The server answers with an empty
// response and then serves the stream like any other; on a wrong or
// missing proof it closes the connection with connUnauthenticated.

const joinLabel = "EXPORTER-brainy-join-token"

var errJoinToken = errors.New("transport: join token not accepted")

func joinProof(conn *quic.Conn, token []byte) ([]byte, error) {
	tlsState := conn.ConnectionState().TLS
	ekm, err := tlsState.ExportKeyingMaterial(joinLabel, nil, 32)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, token)
	m.Write(ekm)
	return m.Sum(nil), nil
}

// sendJoin proves the token to the server and returns the stream it used,
// ready for reuse.
func sendJoin(conn *quic.Conn, token []byte, timeout time.Duration) (*quic.Stream, error) {
	proof, err := joinProof(conn, token)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	_ = str.SetDeadline(time.Now().Add(timeout))
	bp := getBuf()
	defer putBuf(bp)
	_, _, err = exchange(str, bp, kindHello, 0, proof, 64)
	if err != nil {
		str.CancelRead(streamProtocol)
		str.CancelWrite(streamProtocol)
		return nil, fmt.Errorf("%w: %w", errJoinToken, err)
	}
	_ = str.SetDeadline(time.Time{})
	return str, nil
}

// checkJoin reads the client's hello on its first stream and checks the
// proof. On success it returns that stream for serving.
func checkJoin(conn *quic.Conn, token []byte, timeout time.Duration) (*quic.Stream, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	str, err := conn.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	_ = str.SetDeadline(time.Now().Add(timeout))
	var hb [headerLen + sha256.Size]byte
	h, err := readHeader(str, hb[:], sha256.Size)
	if err == nil && h.kind != kindHello {
		err = errBadKind
	}
	var got []byte
	if err == nil {
		got, err = readBody(str, h, hb[headerLen:headerLen])
	}
	want, perr := joinProof(conn, token)
	if err == nil && (perr != nil || !hmac.Equal(got, want)) {
		err = errJoinToken
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errJoinToken, err)
	}
	bp := getBuf()
	defer putBuf(bp)
	if err := writeFrame(str, bp, kindResponse, 0, 0, nil); err != nil {
		return nil, err
	}
	_ = str.SetDeadline(time.Time{})
	return str, nil
}
