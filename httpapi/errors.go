package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net"

	"github.com/valyala/fasthttp"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/jsontext"
)

// apiError is an HTTP error answer: a status and the body
// {"error":{"code":…,"message":…}}.
type apiError struct {
	status  int
	code    string
	message string
}

// classify maps an error to its HTTP answer. It is the one place where
// errors become statuses.
func classify(err error) apiError {
	var inv *item.InvalidError
	switch {
	case errors.As(err, &inv):
		status := fasthttp.StatusBadRequest
		if inv.Code == "body_too_large" || inv.Code == "item_too_large" {
			status = fasthttp.StatusRequestEntityTooLarge
		}
		return apiError{status, inv.Code, inv.Message}
	case errors.Is(err, errKeyReused):
		// 422, as draft-ietf-httpapi-idempotency-key-header asks for a key
		// reused with another payload.
		return apiError{fasthttp.StatusUnprocessableEntity, "idempotency_key_reused",
			"the Idempotency-Key names an item whose content differs from this request's (the key was used for another request, or the item has changed since)"}
	case errors.Is(err, item.ErrNotFound):
		return apiError{fasthttp.StatusNotFound, "not_found", "item not found"}
	case errors.Is(err, item.ErrConflict):
		return apiError{fasthttp.StatusConflict, "conflict", "an item with this id already exists"}
	case errors.Is(err, item.ErrPreconditionFailed):
		return apiError{fasthttp.StatusPreconditionFailed, "precondition_failed", trimPrefix(err.Error())}
	case errors.Is(err, item.ErrClosed):
		return apiError{fasthttp.StatusServiceUnavailable, "shutting_down", "the server is shutting down"}
	case errors.Is(err, item.ErrOutcomeUnknown):
		return apiError{fasthttp.StatusServiceUnavailable, "outcome_unknown", trimPrefix(err.Error())}
	case errors.Is(err, item.ErrNotEverywhere):
		return apiError{fasthttp.StatusGatewayTimeout, "not_everywhere", trimPrefix(err.Error())}
	case errors.Is(err, item.ErrUnavailable):
		return apiError{fasthttp.StatusServiceUnavailable, "unavailable", trimPrefix(err.Error())}
	case errors.Is(err, context.DeadlineExceeded):
		return apiError{fasthttp.StatusServiceUnavailable, "timeout", "the request did not finish in time"}
	default:
		return apiError{fasthttp.StatusInternalServerError, "internal", "internal error"}
	}
}

func trimPrefix(s string) string {
	const p = "brainy: "
	if len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// writeError answers ctx with err; server-side failures are logged.
func (h *Handler) writeError(ctx *fasthttp.RequestCtx, err error) {
	e := classify(err)
	if e.status >= 500 {
		h.log.Warn("request failed", "method", string(ctx.Method()), "path", string(ctx.Path()), "status", e.status, "err", err)
	}
	writeAPIError(ctx, e)
}

func writeAPIError(ctx *fasthttp.RequestCtx, e apiError) {
	ctx.Response.Reset()
	ctx.SetStatusCode(e.status)
	ctx.SetContentType("application/json")
	if e.status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	b := append(ctx.Response.SwapBody(nil)[:0], `{"error":{"code":`...)
	b = jsontext.AppendQuote(b, e.code)
	b = append(b, `,"message":`...)
	b = jsontext.AppendQuote(b, e.message)
	b = append(b, "}}\n"...)
	ctx.Response.SwapBody(b)
}

// errorHandler answers requests fasthttp rejects before our handler runs
// (an oversized body, a malformed request line or header).
func errorHandler(log *slog.Logger) func(ctx *fasthttp.RequestCtx, err error) {
	return func(ctx *fasthttp.RequestCtx, err error) {
		switch {
		case errors.Is(err, fasthttp.ErrBodyTooLarge):
			writeAPIError(ctx, apiError{fasthttp.StatusRequestEntityTooLarge, "body_too_large", "the request body is larger than the limit"})
		case errors.As(err, new(*fasthttp.ErrSmallBuffer)) || errors.Is(err, fasthttp.ErrSmallReadBuffer):
			writeAPIError(ctx, apiError{fasthttp.StatusRequestHeaderFieldsTooLarge, "headers_too_large",
				"the request line and headers are larger than the server reads (4 KiB)"})
		case isTimeout(err):
			// No whole request within the read timeout — often none at all:
			// a client's spare connection, opened and never used. 408 is
			// what HTTP clients expect on such a connection (Go's closes it
			// quietly); a 400 arrives as an answer to no request.
			writeAPIError(ctx, apiError{fasthttp.StatusRequestTimeout, "request_timeout", "no complete request arrived within the read timeout"})
		default:
			log.Debug("malformed request", "err", err)
			writeAPIError(ctx, apiError{fasthttp.StatusBadRequest, "bad_request", "malformed HTTP request"})
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
