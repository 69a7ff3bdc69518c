package httpapi

import (
	"strconv"
	"time"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/jsontext"
	"github.com/soullabs/brainy/internal/query"
)

// appendItem appends the JSON form of it. Every field is always present
// (data null, metadata {} when empty) except vector, so clients see one
// stable shape.
func appendItem(dst []byte, it *item.Item) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsontext.AppendQuote(dst, it.ID)
	dst = append(dst, `,"type":`...)
	dst = jsontext.AppendQuote(dst, it.Type)
	dst = append(dst, `,"tenant":`...)
	dst = jsontext.AppendQuote(dst, it.Tenant)
	dst = append(dst, `,"data":`...)
	if len(it.Data) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, it.Data...)
	}
	dst = append(dst, `,"metadata":`...)
	if len(it.Metadata) == 0 {
		dst = append(dst, "{}"...)
	} else {
		dst = append(dst, it.Metadata...)
	}
	if len(it.Vector) > 0 {
		dst = append(dst, `,"vector":[`...)
		for i, f := range it.Vector {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendFloat(dst, float64(f), 'g', -1, 32)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"createdAt":"`...)
	dst = it.CreatedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","updatedAt":"`...)
	dst = it.UpdatedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","version":`...)
	dst = jsontext.AppendQuote(dst, it.Version)
	return append(dst, '}')
}

func appendPage(dst []byte, p *item.Page) []byte {
	dst = append(dst, `{"items":[`...)
	for i, it := range p.Items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendItem(dst, it)
	}
	dst = append(dst, ']')
	if p.Cursor != "" {
		dst = append(dst, `,"cursor":`...)
		dst = jsontext.AppendQuote(dst, p.Cursor)
	}
	if p.Partial {
		dst = append(dst, `,"partial":true,"missing":[`...)
		for i, r := range p.Missing {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsontext.AppendQuote(dst, r)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendETag appends the quoted entity tag of a version.
func appendETag(dst []byte, version string) []byte {
	dst = append(dst, '"')
	dst = append(dst, version...)
	return append(dst, '"')
}

// appendFindResult appends a find's answer: {"items": [...], "cursor",
// "partial", "missing"}, each item with its "score" when the find ranked.
// An exact find over this node's lists reaches every partition or fails,
// so partial is false and missing empty.
func appendFindResult(dst []byte, r *query.Result, scored bool) []byte {
	dst = append(dst, `{"items":[`...)
	for i, h := range r.Hits {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendItem(dst, h.Item)
		if scored {
			dst = append(dst[:len(dst)-1], `,"score":`...)
			dst = strconv.AppendFloat(dst, h.Score, 'g', -1, 64)
			dst = append(dst, '}')
		}
	}
	dst = append(dst, ']')
	if r.Cursor != "" {
		dst = append(dst, `,"cursor":`...)
		dst = jsontext.AppendQuote(dst, r.Cursor)
	}
	if !r.Partial() {
		return append(dst, `,"partial":false,"missing":[]}`...)
	}
	dst = append(dst, `,"partial":true,"missing":[`...)
	for i, m := range r.Missing {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsontext.AppendQuote(dst, m)
	}
	return append(dst, "]}"...)
}
