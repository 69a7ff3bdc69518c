package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
)

// Frame layout. A stream carries a sequence of exchanges, each one frame
// from the side that opened it and one answer frame back:
//
//	offset size field
//	0      1    kind   (kindRequest, kindResponse, kindError, kindPush, kindHello,
//	                    kindBatch, kindMessage)
//	1      2    method (big endian; a response repeats its request's method)
//	3      2    code   (0 except in kindError frames, where it is the error code)
//	5      4    length (big endian; body bytes that follow)
//	9      n    body   (request or response bytes, or the error message)
//
// A receiver checks length against its MaxFrameBytes before it allocates or
// reads the body.
const headerLen = 9

// Frame kinds.
const (
	kindRequest  byte = 1 // client → server call
	kindResponse byte = 2 // successful answer to a request or push
	kindError    byte = 3 // failed answer: code and message
	kindPush     byte = 4 // server → client push
	kindHello    byte = 5 // join token proof, first frame of a connection
)

// header is a decoded frame header.
type header struct {
	kind   byte
	method uint16
	code   uint16
	length uint32
}

var (
	errBadKind = errors.New("transport: bad frame kind")
)

// appendFrame appends an encoded frame to dst.
func appendFrame(dst []byte, kind byte, method, code uint16, body []byte) []byte {
	dst = append(dst, kind, byte(method>>8), byte(method), byte(code>>8), byte(code))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...)
}

// parseHeader decodes a frame header and checks it against maxBody. b must
// hold at least headerLen bytes.
func parseHeader(b []byte, maxBody int) (header, error) {
	h := header{
		kind:   b[0],
		method: binary.BigEndian.Uint16(b[1:3]),
		code:   binary.BigEndian.Uint16(b[3:5]),
		length: binary.BigEndian.Uint32(b[5:9]),
	}
	if h.kind < kindRequest || h.kind > kindMessage {
		return h, errBadKind
	}
	if uint64(h.length) > uint64(maxBody) {
		return h, ErrFrameTooLarge
	}
	return h, nil
}

// readHeader reads a frame header into scratch, which must have room for
// headerLen bytes, and checks it against maxBody. It returns io.EOF when r
// ends cleanly before the header (the peer is done with the stream) and
// io.ErrUnexpectedEOF when it ends inside it.
func readHeader(r io.Reader, scratch []byte, maxBody int) (header, error) {
	b := scratch[:headerLen]
	if _, err := io.ReadFull(r, b); err != nil {
		return header{}, err
	}
	return parseHeader(b, maxBody)
}

// readBody reads h's body into buf, grown if needed, and returns it. The
// length was checked against the limit by readHeader, so this allocates at
// most the limit.
func readBody(r io.Reader, h header, buf []byte) ([]byte, error) {
	n := int(h.length)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return buf, err
	}
	return buf, nil
}

// readFrame reads one frame from r: the header, checked against maxBody
// before anything is allocated, and the body, read into buf (grown if
// needed; nil gets a new exactly-sized slice).
func readFrame(r io.Reader, buf []byte, maxBody int) (header, []byte, error) {
	var hb [headerLen]byte
	h, err := readHeader(r, hb[:], maxBody)
	if err != nil {
		return h, buf, err
	}
	body, err := readBody(r, h, buf)
	return h, body, err
}

// Buffers for request bodies on the serving side and for encoding frames.
// Buffers that grew beyond maxPooledBuf are dropped rather than pooled, so
// one large frame does not pin memory.
const (
	minPooledBuf = 512
	maxPooledBuf = 64 << 10
)

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, minPooledBuf)
	return &b
}}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}
