package federation

import (
	"testing"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/soullabs/brainy/core"
)

// FuzzDecodeRequest: whatever a peer sends, decoding a federation request
// or answer never panics, a request never names a partition out of range,
// and what decodes re-encodes to the same header.
func FuzzDecodeRequest(f *testing.F) {
	cmd := &core.Command{Op: core.OpReplicate, Source: "eu", To: 3, Values: []core.RemoteValue{{Tenant: "t", ID: "i", Record: []byte{2, 1}}}}
	f.Add(cmd.AppendEncode(appendHeader(nil, false, 3)))
	f.Add(append([]byte{flagCompressed, 3}, s2.Encode(nil, cmd.AppendEncode(nil))...))
	f.Add(append([]byte{flagCompressed, 3}, 0xff, 0xff, 0xff, 0xff, 0x7f)) // claims 32 GiB
	f.Add(appendHeader(nil, true, 7))
	f.Add([]byte{0, 1, 2, 3})
	f.Add([]byte{statusGap, 5, 1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRequest(b, 8); err == nil {
			if r.part < 0 || r.part >= 8 {
				t.Fatalf("partition %d of 8 decoded", r.part)
			}
			if back := append(r.header(), r.rest...); len(back) > len(b) {
				t.Fatalf("%x re-encodes as %x", b, back)
			}
			if body, err := r.body(); err == nil {
				if len(body) > maxBatchBytes {
					t.Fatalf("a body of %d bytes decompressed", len(body))
				}
				_, _ = core.DecodeCommand(body)
			}
		}
		_, _ = decodeApplied(b)
	})
}

func TestDecodeApplied(t *testing.T) {
	a, err := decodeApplied([]byte{statusGap, 9, 1, 2, 3})
	if err != nil || !a.gap || a.position != 9 || a.replaced != 1 || a.conflicts != 2 || a.skipped != 3 {
		t.Fatalf("%+v, %v", a, err)
	}
	if _, err := decodeApplied([]byte{7, 1, 1, 1, 1}); err == nil {
		t.Fatal("an unknown status decoded")
	}
}

// TestLagQuantiles: the lag samples are the time between each value's
// clock time and its apply; values from the future are not samples.
func TestLagQuantiles(t *testing.T) {
	var s lagSamples
	now := time.Unix(1000, 0)
	var vals []core.RemoteValue
	for i := range 100 {
		hlc := now.Add(-time.Duration(i+1) * time.Millisecond).UnixNano()
		vals = append(vals, core.RemoteValue{Record: record(hlc)})
	}
	vals = append(vals, core.RemoteValue{Record: record(now.Add(time.Hour).UnixNano())}, core.RemoteValue{Record: []byte{2}})
	s.add(vals, now)
	p50, p99 := s.quantiles()
	if p50 != 51*time.Millisecond || p99 != 100*time.Millisecond {
		t.Fatalf("p50 %v p99 %v, want 51ms and 100ms", p50, p99)
	}
}

// record is the start of an encoded record: the format and the time.
func record(hlc int64) []byte {
	b := []byte{2}
	for v := uint64(hlc); ; v >>= 7 {
		if v < 0x80 {
			return append(b, byte(v))
		}
		b = append(b, byte(v)|0x80)
	}
}
