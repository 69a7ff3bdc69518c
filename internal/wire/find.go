package wire

import (
	"encoding/binary"
	"math"
	"time"

	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
)

// MethodFind runs a find (POST /v1/find) where the data and its indexes
// are. An edge sends its clients' finds to a core instead of listing every
// item across the network; a core scatters a find to the members holding
// the partitions it lacks, each answering for the partitions named in the
// request. The request is AppendFindRequest's (the tenant and the query's
// JSON, which the callee parses and bounds as its API does), the answer
// AppendFindAnswer's. Edges and cores may call it.
const MethodFind uint16 = 106

// MaxFindBudget bounds the time a find request may ask its callee to
// take.
const MaxFindBudget = time.Minute

// FindRequest is a find of Tenant's items by Query, the JSON body of POST
// /v1/find.
type FindRequest struct {
	Tenant string
	Query  []byte
	// Parts, when not empty, are the partitions the callee answers for
	// (its share of a scattered find); empty: the whole find.
	Parts []int
	// Budget is how long the callee may take (at most MaxFindBudget);
	// zero: its own find timeout.
	Budget time.Duration
}

// AppendFindRequest encodes r.
func AppendFindRequest(dst []byte, r *FindRequest) []byte {
	dst = append(dst, format)
	dst = codec.AppendString(dst, r.Tenant)
	dst = codec.AppendBytes(dst, r.Query)
	dst = binary.AppendUvarint(dst, uint64(len(r.Parts)))
	for _, p := range r.Parts {
		dst = binary.AppendUvarint(dst, uint64(p))
	}
	return binary.AppendUvarint(dst, uint64(r.Budget/time.Millisecond))
}

// DecodeFindRequest decodes AppendFindRequest's encoding; Query aliases b.
// Partitions are checked against MaxTopologyPartitions (a node's most), not the callee's count.
func DecodeFindRequest(b []byte) (*FindRequest, error) {
	d := codec.Decoder{B: b, Fail: ErrMalformed}
	if d.Byte() != format {
		return nil, ErrMalformed
	}
	r := &FindRequest{Tenant: d.String(), Query: d.Bytes()}
	n := d.Uvarint()
	if n > uint64(len(d.B)) || n > MaxTopologyPartitions {
		return nil, ErrMalformed
	}
	for range n {
		p := d.Uvarint()
		if p >= MaxTopologyPartitions {
			return nil, ErrMalformed
		}
		r.Parts = append(r.Parts, int(p))
	}
	ms := d.Uvarint()
	if d.Err != nil || len(d.B) != 0 || ms > uint64(MaxFindBudget/time.Millisecond) {
		return nil, ErrMalformed
	}
	r.Budget = time.Duration(ms) * time.Millisecond
	return r, nil
}

// FindAnswer is a find's answer: its items, each with its score, the
// cursor to continue from, and what did not answer (query.Result).
type FindAnswer struct {
	Items   []*item.Item
	Scores  []float64
	Cursor  string
	Missing []string
}

// AppendFindAnswer encodes a; Scores holds one score per item.
func AppendFindAnswer(dst []byte, a *FindAnswer) []byte {
	dst = append(dst, format)
	dst = binary.AppendUvarint(dst, uint64(len(a.Items)))
	for i, it := range a.Items {
		dst = appendItemBody(dst, it)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(a.Scores[i]))
	}
	dst = codec.AppendString(dst, a.Cursor)
	dst = binary.AppendUvarint(dst, uint64(len(a.Missing)))
	for _, m := range a.Missing {
		dst = codec.AppendString(dst, m)
	}
	return dst
}

// DecodeFindAnswer decodes AppendFindAnswer's encoding. The items own
// their bytes.
func DecodeFindAnswer(b []byte) (*FindAnswer, error) {
	d := codec.Decoder{B: b, Fail: ErrMalformed}
	if d.Byte() != format {
		return nil, ErrMalformed
	}
	n := d.Uvarint()
	if n > uint64(len(d.B))/9 { // an item takes a byte at least, a score 8
		return nil, ErrMalformed
	}
	a := &FindAnswer{Items: make([]*item.Item, 0, n), Scores: make([]float64, 0, n)}
	for range n {
		a.Items = append(a.Items, decodeItem(&d))
		if d.Err != nil || len(d.B) < 8 {
			return nil, ErrMalformed
		}
		a.Scores = append(a.Scores, math.Float64frombits(binary.LittleEndian.Uint64(d.B)))
		d.B = d.B[8:]
	}
	a.Cursor = d.String()
	m := d.Uvarint()
	if m > uint64(len(d.B)) {
		return nil, ErrMalformed
	}
	for range m {
		a.Missing = append(a.Missing, d.String())
	}
	if d.Err != nil || len(d.B) != 0 {
		return nil, ErrMalformed
	}
	return a, nil
}
