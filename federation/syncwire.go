package federation

import (
	"encoding/binary"
	"fmt"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/codec"
)

// The bodies of the blue/green sync methods (wire.MethodSync*). Requests
// for one partition start with the federation header (flags byte with
// flagForwarded, uvarint partition: see receive.go):
//
//	MethodSyncInfo     request: empty
//	                   answer:  uvarint partitions, then per partition a string: its
//	                            leader's QUIC address ("" unknown, or the core asked)
//	MethodSyncPage     request: header, uvarint need, bytes cursor, uvarint max items,
//	                            uvarint max bytes
//	                   answer:  uvarint committed, bytes next cursor ("" the partition
//	                            ends), values
//	MethodSyncChanges  request: header, uvarint from, uvarint max bytes, uvarint wait (ms)
//	                   answer:  status byte (0 read, 1 compacted), uvarint to,
//	                            uvarint committed, values
//	MethodSyncApply    request: header (green's partition), core.Command (OpReplicate)
//	                   answer:  empty
//
//	values: uvarint n, n × (string tenant, string id, byte deleted, bytes record)
//
// need is the blue partition's applied index the page must include (the
// one read before the copy's first page): a core that has not stored it
// yet, a new leader catching up, refuses the page. committed is the
// answering core's stored applied index, read before the page or the log.

// Bounds of one sync request, whatever the caller asks: an answer fits a
// transport frame (4 MiB) with room for the one log entry SyncChanges may
// finish past its byte bound (≤ 1 MiB of values).
const (
	maxSyncPageItems = 4096
	maxSyncBytes     = 1 << 20
	maxSyncWait      = 2000 // ms
)

const (
	syncRead      = 0
	syncCompacted = 1
)

// syncPageReq is a decoded MethodSyncPage request (after the header).
type syncPageReq struct {
	need     uint64
	cursor   []byte
	maxItems int
	maxBytes int
}

func (r *syncPageReq) append(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, r.need)
	dst = codec.AppendBytes(dst, r.cursor)
	dst = binary.AppendUvarint(dst, uint64(r.maxItems))
	return binary.AppendUvarint(dst, uint64(r.maxBytes))
}

// decodeSyncPageReq parses a page request, bounding what it asks.
func decodeSyncPageReq(b []byte) (syncPageReq, error) {
	d := codec.Decoder{B: b, Fail: errBadRequest}
	r := syncPageReq{need: d.Uvarint(), cursor: d.Bytes()}
	items, bytes := d.Uvarint(), d.Uvarint()
	if d.Err != nil || len(d.B) != 0 || len(r.cursor) > core.MaxSyncCursor {
		return syncPageReq{}, errBadRequest
	}
	r.maxItems = int(min(max(items, 1), maxSyncPageItems))
	r.maxBytes = int(min(max(bytes, 1), maxSyncBytes))
	return r, nil
}

// syncChangesReq is a decoded MethodSyncChanges request (after the header).
type syncChangesReq struct {
	from     uint64
	maxBytes int
	waitMs   int
}

func (r *syncChangesReq) append(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, r.from)
	dst = binary.AppendUvarint(dst, uint64(r.maxBytes))
	return binary.AppendUvarint(dst, uint64(r.waitMs))
}

func decodeSyncChangesReq(b []byte) (syncChangesReq, error) {
	d := codec.Decoder{B: b, Fail: errBadRequest}
	from, bytes, wait := d.Uvarint(), d.Uvarint(), d.Uvarint()
	if d.Err != nil || len(d.B) != 0 {
		return syncChangesReq{}, errBadRequest
	}
	return syncChangesReq{from: from, maxBytes: int(min(max(bytes, 1), maxSyncBytes)), waitMs: int(min(wait, maxSyncWait))}, nil
}

// syncAnswer is a decoded page or changes answer.
type syncAnswer struct {
	compacted bool   // changes: the log no longer holds from+1
	to        uint64 // changes: the log position the values cover through
	committed uint64
	next      []byte // page: the next page's cursor, nil at the end
	values    []core.RemoteValue
}

func appendValues(dst []byte, values []core.RemoteValue) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(values)))
	for i := range values {
		v := &values[i]
		dst = codec.AppendString(dst, v.Tenant)
		dst = codec.AppendString(dst, v.ID)
		del := byte(0)
		if v.Deleted {
			del = 1
		}
		dst = codec.AppendBytes(append(dst, del), v.Record)
	}
	return dst
}

func decodeValues(d *codec.Decoder) ([]core.RemoteValue, error) {
	n := d.Uvarint()
	// Each value takes at least four bytes: n cannot exceed what is left.
	if d.Err != nil || n > uint64(len(d.B)/4) {
		return nil, errBadRequest
	}
	values := make([]core.RemoteValue, 0, n)
	for range n {
		v := core.RemoteValue{Tenant: d.String(), ID: d.String()}
		switch d.Byte() {
		case 0:
		case 1:
			v.Deleted = true
		default:
			return nil, errBadRequest
		}
		v.Record = d.Bytes()
		values = append(values, v)
	}
	if d.Err != nil {
		return nil, errBadRequest
	}
	return values, nil
}

func appendPageAnswer(dst []byte, committed uint64, next []byte, values []core.RemoteValue) []byte {
	dst = binary.AppendUvarint(dst, committed)
	return appendValues(codec.AppendBytes(dst, next), values)
}

func decodePageAnswer(b []byte) (syncAnswer, error) {
	d := codec.Decoder{B: b, Fail: errBadRequest}
	a := syncAnswer{committed: d.Uvarint(), next: d.Bytes()}
	values, err := decodeValues(&d)
	if err != nil || len(d.B) != 0 {
		return syncAnswer{}, fmt.Errorf("federation: malformed sync page")
	}
	if len(a.next) == 0 {
		a.next = nil
	}
	a.values = values
	return a, nil
}

func appendChangesAnswer(dst []byte, compacted bool, to, committed uint64, values []core.RemoteValue) []byte {
	status := byte(syncRead)
	if compacted {
		status = syncCompacted
	}
	dst = binary.AppendUvarint(append(dst, status), to)
	return appendValues(binary.AppendUvarint(dst, committed), values)
}

func decodeChangesAnswer(b []byte) (syncAnswer, error) {
	d := codec.Decoder{B: b, Fail: errBadRequest}
	status := d.Byte()
	a := syncAnswer{compacted: status == syncCompacted, to: d.Uvarint(), committed: d.Uvarint()}
	values, err := decodeValues(&d)
	if err != nil || len(d.B) != 0 || status > syncCompacted {
		return syncAnswer{}, fmt.Errorf("federation: malformed sync changes")
	}
	a.values = values
	return a, nil
}

// syncInfo is a decoded MethodSyncInfo answer.
type syncInfo struct {
	partitions int
	leaders    []string // by partition; "" unknown, or the core asked
}

func appendSyncInfo(dst []byte, leaders []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(leaders)))
	for _, l := range leaders {
		dst = codec.AppendString(dst, l)
	}
	return dst
}

func decodeSyncInfo(b []byte) (syncInfo, error) {
	d := codec.Decoder{B: b, Fail: errBadRequest}
	n := d.Uvarint()
	// Each address takes at least a byte; a partition count is 16 bits.
	if d.Err != nil || n == 0 || n > 1<<16 || n > uint64(len(d.B)) {
		return syncInfo{}, fmt.Errorf("federation: malformed sync info")
	}
	in := syncInfo{partitions: int(n), leaders: make([]string, 0, n)}
	for range n {
		in.leaders = append(in.leaders, d.String())
	}
	if d.Err != nil || len(d.B) != 0 {
		return syncInfo{}, fmt.Errorf("federation: malformed sync info")
	}
	return in, nil
}
