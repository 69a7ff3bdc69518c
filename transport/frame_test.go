package transport

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		kind   byte
		method uint16
		code   uint16
		body   []byte
	}{
		{name: "request", kind: kindRequest, method: 1, body: []byte("get item-1")},
		{name: "empty response", kind: kindResponse, method: 65535},
		{name: "error", kind: kindError, method: 7, code: CodeUnknownMethod, body: []byte("unknown method 7")},
		{name: "push", kind: kindPush, method: 300, body: bytes.Repeat([]byte{0xff}, 1000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := appendFrame(nil, tt.kind, tt.method, tt.code, tt.body)
			if len(enc) != headerLen+len(tt.body) {
				t.Fatalf("encoded %d bytes, want %d", len(enc), headerLen+len(tt.body))
			}
			h, body, err := readFrame(bytes.NewReader(enc), nil, 1024)
			if err != nil {
				t.Fatal(err)
			}
			if h.kind != tt.kind || h.method != tt.method || h.code != tt.code || !bytes.Equal(body, tt.body) {
				t.Fatalf("decoded %+v %q", h, body)
			}
		})
	}
}

func TestReadFrameRejects(t *testing.T) {
	valid := appendFrame(nil, kindRequest, 1, 0, []byte("abc"))
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{name: "empty", in: nil, want: io.EOF},
		{name: "short header", in: valid[:5], want: io.ErrUnexpectedEOF},
		{name: "short body", in: valid[:len(valid)-1], want: io.ErrUnexpectedEOF},
		{name: "kind zero", in: appendFrame(nil, 0, 1, 0, nil), want: errBadKind},
		{name: "kind unknown", in: appendFrame(nil, kindMessage+1, 1, 0, nil), want: errBadKind},
		{name: "over limit", in: appendFrame(nil, kindRequest, 1, 0, make([]byte, 17)), want: ErrFrameTooLarge},
		{name: "huge declared length", in: []byte{kindRequest, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff}, want: ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readFrame(bytes.NewReader(tt.in), nil, 16)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// A header that declares a huge body is rejected before anything is
// allocated for it.
func TestReadFrameDoesNotAllocateDeclaredLength(t *testing.T) {
	in := []byte{kindRequest, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff}
	r := bytes.NewReader(in)
	const runs = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		r.Reset(in)
		if _, _, err := readFrame(r, nil, 1<<20); !errors.Is(err, ErrFrameTooLarge) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 256 {
		t.Fatalf("%d bytes allocated per rejected header, want at most a few", per)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	const limit = 1 << 10
	f.Add(appendFrame(nil, kindRequest, 1, 0, []byte("get item-1")))
	f.Add(appendFrame(nil, kindError, 2, CodeUnknownMethod, []byte("unknown method 2")))
	f.Add(appendFrame(nil, kindPush, 9, 0, nil))
	f.Add(appendFrame(nil, kindHello, 0, 0, make([]byte, 32)))
	f.Add([]byte{kindRequest, 0, 1, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, body, err := readFrame(bytes.NewReader(in), nil, limit)
		if cap(body) > limit {
			t.Fatalf("allocated %d bytes, limit %d", cap(body), limit)
		}
		if err != nil {
			return
		}
		if len(body) != int(h.length) {
			t.Fatalf("body %d bytes, header says %d", len(body), h.length)
		}
		if enc := appendFrame(nil, h.kind, h.method, h.code, body); !bytes.Equal(enc, in[:len(enc)]) {
			t.Fatalf("re-encoded %x, input %x", enc, in)
		}
	})
}
