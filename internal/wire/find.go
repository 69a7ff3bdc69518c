package wire

import (
	"encoding/binary"
	"math"

	"github.com/soullabs/brainy/internal/codec"
	"github.com/soullabs/brainy/internal/item"
)

// MethodFind runs a find (POST /v1/find) where the data and its indexes
// are: an edge sends its clients' finds to a core instead of listing every
// item across the network. The request is AppendFindRequest's (the tenant
// and the query's JSON, which the core parses and bounds as its API
// does), the answer AppendFindAnswer's. Edges and cores may call it.
const MethodFind uint16 = 106

// AppendFindRequest encodes a find of tenant's items by query, the JSON
// body of POST /v1/find.
func AppendFindRequest(dst []byte, tenant string, query []byte) []byte {
	dst = append(dst, format)
	dst = codec.AppendString(dst, tenant)
	return codec.AppendBytes(dst, query)
}

// DecodeFindRequest decodes AppendFindRequest's encoding; query aliases b.
func DecodeFindRequest(b []byte) (tenant string, query []byte, err error) {
	d := codec.Decoder{B: b, Fail: ErrMalformed}
	if d.Byte() != format {
		return "", nil, ErrMalformed
	}
	tenant, query = d.String(), d.Bytes()
	if d.Err != nil || len(d.B) != 0 {
		return "", nil, ErrMalformed
	}
	return tenant, query, nil
}

// AppendFindAnswer encodes a find's answer: its items, each with its
// score, and the cursor to continue from.
func AppendFindAnswer(dst []byte, items []*item.Item, scores []float64, cursor string) []byte {
	dst = append(dst, format)
	dst = binary.AppendUvarint(dst, uint64(len(items)))
	for i, it := range items {
		dst = appendItemBody(dst, it)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(scores[i]))
	}
	return codec.AppendString(dst, cursor)
}

// DecodeFindAnswer decodes AppendFindAnswer's encoding. The items own
// their bytes.
func DecodeFindAnswer(b []byte) (items []*item.Item, scores []float64, cursor string, err error) {
	d := codec.Decoder{B: b, Fail: ErrMalformed}
	if d.Byte() != format {
		return nil, nil, "", ErrMalformed
	}
	n := d.Uvarint()
	if n > uint64(len(d.B))/9 { // an item takes a byte at least, a score 8
		return nil, nil, "", ErrMalformed
	}
	items, scores = make([]*item.Item, 0, n), make([]float64, 0, n)
	for range n {
		items = append(items, decodeItem(&d))
		if d.Err != nil || len(d.B) < 8 {
			return nil, nil, "", ErrMalformed
		}
		scores = append(scores, math.Float64frombits(binary.LittleEndian.Uint64(d.B)))
		d.B = d.B[8:]
	}
	cursor = d.String()
	if d.Err != nil || len(d.B) != 0 {
		return nil, nil, "", ErrMalformed
	}
	return items, scores, cursor, nil
}
