package httpapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"

	"github.com/valyala/fasthttp"

	"github.com/soullabs/brainy/internal/item"
)

// An Add with an Idempotency-Key (docs/design/20261206_idempotency.md)
// names its item after the key, so a retry names the same item; the
// create-only Add then refuses the second copy, and the handler answers
// the retry with the item the first attempt stored.

// MaxIdempotencyKeyBytes bounds an Idempotency-Key.
const MaxIdempotencyKeyBytes = 255

// errKeyReused: the Idempotency-Key names an item whose content is not
// the request's. classify answers it 422.
var errKeyReused = errors.New("brainy: idempotency key reused")

// idempotencyKey reads the Idempotency-Key header: "" when absent, an
// error when present but not 1 to 255 printable ASCII characters.
func idempotencyKey(ctx *fasthttp.RequestCtx) (string, error) {
	k := ctx.Request.Header.Peek("Idempotency-Key")
	if k == nil {
		return "", nil
	}
	ok := len(k) > 0 && len(k) <= MaxIdempotencyKeyBytes
	for _, c := range k {
		ok = ok && c >= 0x20 && c <= 0x7e
	}
	if !ok {
		return "", item.Invalid("invalid_idempotency_key", "the Idempotency-Key header must be 1 to %d printable ASCII characters", MaxIdempotencyKeyBytes)
	}
	return string(k), nil
}

// KeyedID is the id of the item an Add with Idempotency-Key key creates:
// "ik_" and the first 16 bytes of SHA-256 over a fixed label and the key,
// in hex. Ids are scoped by tenant, so two tenants' equal keys name two
// items and the tenant need not be hashed. It must never change: a retry
// sent across an upgrade must name the item the first attempt made.
func KeyedID(key string) string {
	sum := sha256.Sum256([]byte("brainy idempotency key\x00" + key))
	return "ik_" + hex.EncodeToString(sum[:16])
}

// replay answers a keyed Add whose item exists. When its content is the
// request's, an earlier attempt of this request made it: that item is the
// answer. Otherwise the key was used for another request (or the item has
// changed since): errKeyReused. An item deleted meanwhile frees the key,
// and the Add is made again (its first try was refused, so this sends no
// write twice).
func (h *Handler) replay(ctx context.Context, tenant string, it *item.Item) (_ *item.Item, replayed bool, _ error) {
	stored, err := h.be.Get(ctx, tenant, it.ID)
	switch {
	case errors.Is(err, item.ErrNotFound):
		out, err := h.be.Add(ctx, tenant, it)
		return out, false, err
	case err != nil:
		return nil, false, err
	case !sameContent(it, stored):
		return nil, false, errKeyReused
	}
	return stored, true, nil
}

// sameContent reports whether stored holds what the request it asked to
// store. Both are compact JSON (the core compacts again what the decoder
// compacted, to the same bytes); the core stores a null as nothing.
func sameContent(it, stored *item.Item) bool {
	return it.Type == stored.Type && sameValue(it.Data, stored.Data) && sameValue(it.Metadata, stored.Metadata) &&
		slices.Equal(it.Vector, stored.Vector)
}

func sameValue(a, b []byte) bool {
	if string(a) == "null" {
		a = nil
	}
	if string(b) == "null" {
		b = nil
	}
	return bytes.Equal(a, b)
}
