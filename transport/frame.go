package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
)

// Frame layout. Every stream carries exactly one frame in each direction,
// then FIN:
//
//	offset size field
//	0      1    kind   (kindRequest, kindResponse, kindError, kindPush)
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
)

// header is a decoded frame header.
type header struct {
	kind   byte
	method uint16
	code   uint16
	length uint32
}

var (
	errBadKind  = errors.New("transport: bad frame kind")
	errTrailing = errors.New("transport: data after frame")
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
	if h.kind < kindRequest || h.kind > kindPush {
		return h, errBadKind
	}
	if uint64(h.length) > uint64(maxBody) {
		return h, ErrFrameTooLarge
	}
	return h, nil
}

// readFrame reads one frame from r and then expects the end of the stream.
// The body is read into buf (grown if needed) and returned, so the caller
// can pass a pooled buffer, or nil to get a new exactly-sized slice. No more
// than maxBody bytes are ever allocated.
func readFrame(r io.Reader, buf []byte, maxBody int) (header, []byte, error) {
	var hb [headerLen]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return header{}, buf, err
	}
	h, err := parseHeader(hb[:], maxBody)
	if err != nil {
		return h, buf, err
	}
	n := int(h.length)
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return h, buf, err
	}
	// The sender closes its side right after the frame: read the FIN so the
	// stream completes and its credit is released.
	var one [1]byte
	for {
		m, err := r.Read(one[:])
		if m > 0 {
			return h, buf, errTrailing
		}
		if err == io.EOF {
			return h, buf, nil
		}
		if err != nil {
			return h, buf, err
		}
	}
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
