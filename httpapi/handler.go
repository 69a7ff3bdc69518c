package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/internal/query"
)

// Backend serves the items behind the HTTP API: a core node (through its
// cluster, package cluster), or on an edge the upstream cores (package
// upstream). Every method is called concurrently from request goroutines.
// Errors are classified with the sentinels of package item.
type Backend interface {
	item.API
	Metrics() nodestats.Snapshot
	// Healthy reports whether the backend can serve writes (for /readyz).
	Healthy() bool
}

// DefaultWriteTimeout is Config.WriteTimeout when zero.
const DefaultWriteTimeout = 10 * time.Second

// DefaultMaxBodyBytesInFlight is Config.MaxBodyBytesInFlight when zero
// (raised to Limits.MaxBodyBytes if that is larger): 64 bodies of the
// default largest size at once, or tens of thousands of typical ones.
const DefaultMaxBodyBytesInFlight = 64 << 20

// Config configures the HTTP API. Zero fields take their defaults.
type Config struct {
	// Limits bound every request. Zero fields take item.DefaultLimits
	// (1 MiB bodies, 256-byte ids, depth 32, 10,000 fields, 4096 dims).
	Limits item.Limits
	// MaxBodyBytesInFlight bounds the request bodies held at once by the
	// requests being served: each holds its declared Content-Length (a
	// chunked body: Limits.MaxBodyBytes) from the moment its tenant is
	// known until it is answered. A body that does not fit is refused at
	// once, 503 overloaded with Retry-After, unread: waiting would hold
	// the connection and its goroutine instead. Default
	// DefaultMaxBodyBytesInFlight, at least Limits.MaxBodyBytes.
	MaxBodyBytesInFlight int64
	// APIKeys, when non-empty, turns authentication on: every request but
	// /healthz and /readyz needs "Authorization: Bearer KEY", and the key
	// decides the tenant. Nil means no authentication.
	APIKeys *APIKeys
	// DefaultTenant is the tenant of requests without X-Brainy-Tenant when
	// authentication is off. Default "default".
	DefaultTenant string
	// WriteTimeout bounds how long a write waits for its commit before the
	// client gets 503. Default 10 s. The write may still complete.
	WriteTimeout time.Duration
	// Registry receives the HTTP and node metrics served at /metrics. Nil
	// means a new private registry.
	Registry *prometheus.Registry
	// Logger receives request failures (5xx) and lifecycle events. Nil
	// discards them.
	Logger *slog.Logger
	// RateLimit bounds each tenant's item requests per second (a token
	// bucket of RateBurst tokens); past it the answer is 429 with
	// Retry-After. 0 means no limit.
	RateLimit float64
	// RateBurst is the bucket size. Default: RateLimit (one second's worth).
	RateBurst int
	// Edge marks a handler in front of cores reached over the network (an
	// edge): what only a core of a federation answers — ?consistency=global,
	// ?scope=global, /v1/conflicts — is refused (400 core_only) instead of
	// answered regionally, as if it had been.
	Edge bool
	// Enrol, when set, answers POST /v1/enrol: an edge's enrolment request
	// (pki.Enrolment), which carries its own proof of authority — a token
	// made with the cluster CA — so it needs no API key. An error refuses
	// it (403 enrolment_refused, with the error's message). Nil: 404, as
	// on nodes that hold no CA key, and on edges.
	Enrol func(body []byte) ([]byte, error)
	// Cache, when set, answers GETs from RAM (an edge's cache, package
	// edge); writes made through this handler update it. Nil means every
	// GET asks the backend. Its Prometheus metrics are the cache's to
	// register on Registry.
	Cache Cache
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	c.Limits.EnsureDefaults()
	if c.MaxBodyBytesInFlight == 0 {
		c.MaxBodyBytesInFlight = max(DefaultMaxBodyBytesInFlight, int64(c.Limits.MaxBodyBytes))
	}
	if c.DefaultTenant == "" {
		c.DefaultTenant = "default"
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.Registry == nil {
		c.Registry = prometheus.NewRegistry()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Handler is the HTTP API v1 as a fasthttp handler.
type Handler struct {
	cfg      Config
	limits   *tenantLimits // nil without a rate limit
	be       Backend
	log      *slog.Logger
	metrics  *httpMetrics
	promh    fasthttp.RequestHandler
	draining atomic.Bool
	bodies   atomic.Int64 // bytes of request bodies held now (Config.MaxBodyBytesInFlight)
}

// NewHandler returns the API handler for be.
func NewHandler(cfg Config, be Backend) (*Handler, error) {
	cfg.EnsureDefaults()
	if err := cfg.Limits.CheckTenant(cfg.DefaultTenant); err != nil {
		return nil, fmt.Errorf("httpapi: DefaultTenant: %w", err)
	}
	if cfg.MaxBodyBytesInFlight < int64(cfg.Limits.MaxBodyBytes) {
		return nil, fmt.Errorf("httpapi: MaxBodyBytesInFlight %d is below Limits.MaxBodyBytes %d: a body of the largest size could never be read",
			cfg.MaxBodyBytesInFlight, cfg.Limits.MaxBodyBytes)
	}
	h := &Handler{cfg: cfg, be: be, log: cfg.Logger.With("component", "http")}
	m, err := newHTTPMetrics(cfg.Registry, be)
	if err != nil {
		return nil, err
	}
	h.metrics = m
	if cfg.RateLimit > 0 {
		h.limits = newTenantLimits(cfg.RateLimit, cfg.RateBurst)
	}
	h.promh = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	return h, nil
}

// SetDraining makes /readyz answer 503, so load balancers stop sending
// new requests while in-flight ones finish.
func (h *Handler) SetDraining() { h.draining.Store(true) }

// Route names, the label of the request metrics.
const (
	routeItems     = "items"
	routeItem      = "item"
	routeMetrics   = "metrics"
	routeProm      = "prometheus"
	routeHealth    = "health"
	routeOther     = "other"
	routeEnrol     = "enrol"
	routeFind      = "find"
	routeConflicts = "conflicts"
)

var (
	prefixItems = []byte("/v1/items")
	jsonCT      = []byte("application/json")
)

// Serve is the fasthttp.RequestHandler. It never panics: a panic becomes
// a 500 with the JSON error body, and is logged.
func (h *Handler) Serve(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	route := routeOther
	defer func() {
		if r := recover(); r != nil {
			h.log.Error("panic serving request", "method", string(ctx.Method()), "path", string(ctx.Path()), "panic", fmt.Sprint(r))
			writeAPIError(ctx, apiError{fasthttp.StatusInternalServerError, "internal", "internal error"})
		}
		h.metrics.observe(route, ctx.Response.StatusCode(), start)
	}()
	path := ctx.Request.URI().PathOriginal()
	if i := bytes.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	switch {
	case bytes.HasPrefix(path, prefixItems):
		rest := path[len(prefixItems):]
		if len(rest) == 0 || (len(rest) == 1 && rest[0] == '/') {
			route = routeItems
			h.serveCollection(ctx)
			return
		}
		if rest[0] == '/' {
			route = routeItem
			h.serveItem(ctx, rest[1:])
			return
		}
	case string(path) == "/v1/find":
		route = routeFind
		h.serveFind(ctx)
		return
	case string(path) == "/v1/conflicts":
		route = routeConflicts
		h.serveConflicts(ctx)
		return
	case string(path) == "/v1/metrics":
		route = routeMetrics
		if h.allow(ctx, "GET") && h.authorize(ctx) {
			h.serveMetrics(ctx)
		}
		return
	case string(path) == "/metrics":
		route = routeProm
		if h.allow(ctx, "GET") && h.authorize(ctx) {
			h.promh(ctx)
		}
		return
	case string(path) == "/v1/enrol" && h.cfg.Enrol != nil:
		route = routeEnrol
		if h.allow(ctx, "POST") {
			h.serveEnrol(ctx)
		}
		return
	case string(path) == "/healthz":
		route = routeHealth
		if h.allow(ctx, "GET") {
			ctx.SetContentType("application/json")
			ctx.SetBodyString(`{"status":"ok"}` + "\n")
		}
		return
	case string(path) == "/readyz":
		route = routeHealth
		if h.allow(ctx, "GET") {
			ctx.SetContentType("application/json")
			if h.draining.Load() || !h.be.Healthy() {
				writeAPIError(ctx, apiError{fasthttp.StatusServiceUnavailable, "not_ready", "the server is not ready"})
				return
			}
			ctx.SetBodyString(`{"status":"ready"}` + "\n")
		}
		return
	}
	writeAPIError(ctx, apiError{fasthttp.StatusNotFound, "route_not_found", "no such route: " + string(path)})
}

// allow checks the method; HEAD is allowed wherever GET is.
func (h *Handler) allow(ctx *fasthttp.RequestCtx, methods ...string) bool {
	m := ctx.Method()
	for _, want := range methods {
		if string(m) == want || (want == "GET" && string(m) == "HEAD") {
			return true
		}
	}
	allowHeader := ""
	for i, want := range methods {
		if i > 0 {
			allowHeader += ", "
		}
		allowHeader += want
		if want == "GET" {
			allowHeader += ", HEAD"
		}
	}
	writeAPIError(ctx, apiError{fasthttp.StatusMethodNotAllowed, "method_not_allowed",
		fmt.Sprintf("method %s is not allowed here; allowed: %s", m, allowHeader)})
	ctx.Response.Header.Set("Allow", allowHeader)
	return false
}

// authorize admits a request to the metrics endpoints: with
// authentication on, an admin key.
func (h *Handler) authorize(ctx *fasthttp.RequestCtx) bool {
	if _, ok := h.tenant(ctx); !ok {
		return false
	}
	// The node's metrics span every tenant and name the cluster's
	// addresses: with authentication on, only an admin key reads them.
	if h.cfg.APIKeys.Len() > 0 && !h.cfg.APIKeys.admin(ctx.Request.Header.Peek("Authorization")) {
		writeAPIError(ctx, apiError{fasthttp.StatusForbidden, "forbidden", "the node's metrics need an admin key (\"KEY TENANT admin\" in the API key file)"})
		return false
	}
	return true
}

// tenant resolves the request's tenant, answering 401/403/400 itself when
// it cannot.
func (h *Handler) tenant(ctx *fasthttp.RequestCtx) (string, bool) {
	asked := ctx.Request.Header.Peek("X-Brainy-Tenant")
	if h.cfg.APIKeys.Len() > 0 {
		auth := ctx.Request.Header.Peek("Authorization")
		if len(auth) == 0 {
			writeAPIError(ctx, apiError{fasthttp.StatusUnauthorized, "unauthorized", "missing API key: send Authorization: Bearer KEY"})
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="brainy"`)
			return "", false
		}
		t, ok := h.cfg.APIKeys.tenant(auth)
		if !ok {
			writeAPIError(ctx, apiError{fasthttp.StatusUnauthorized, "unauthorized", "invalid API key"})
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="brainy", error="invalid_token"`)
			return "", false
		}
		if len(asked) > 0 && string(asked) != t {
			writeAPIError(ctx, apiError{fasthttp.StatusForbidden, "forbidden", "this API key does not grant access to tenant " + strconv.Quote(string(asked))})
			return "", false
		}
		return t, true
	}
	if len(asked) == 0 {
		return h.cfg.DefaultTenant, true
	}
	t := string(asked)
	if err := h.cfg.Limits.CheckTenant(t); err != nil {
		h.writeError(ctx, err)
		return "", false
	}
	return t, true
}

// itemTenant is tenant plus the tenant's rate limit, for item routes.
func (h *Handler) itemTenant(ctx *fasthttp.RequestCtx) (string, bool) {
	t, ok := h.tenant(ctx)
	if !ok || h.limits == nil {
		return t, ok
	}
	if allowed, wait := h.limits.allow(t, time.Now()); !allowed {
		writeAPIError(ctx, apiError{fasthttp.StatusTooManyRequests, "rate_limited",
			"tenant " + strconv.Quote(t) + " is over its request rate"})
		var b [20]byte
		ctx.Response.Header.SetBytesV("Retry-After", strconv.AppendInt(b[:0], int64(max(wait.Round(time.Second), time.Second)/time.Second), 10))
		return "", false
	}
	return t, true
}

// checkBody enforces the content type of a request body. curl -d sends
// application/x-www-form-urlencoded by default; a form-encoded body would
// fail to parse as JSON anyway, so it is accepted and parsed as JSON.
func (h *Handler) checkBody(ctx *fasthttp.RequestCtx) bool {
	ct := ctx.Request.Header.ContentType()
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = bytes.TrimSpace(ct)
	switch {
	case len(ct) == 0, bytes.EqualFold(ct, jsonCT),
		bytes.EqualFold(ct, []byte("application/merge-patch+json")),
		bytes.EqualFold(ct, []byte("application/x-www-form-urlencoded")):
		return true
	}
	writeAPIError(ctx, apiError{fasthttp.StatusUnsupportedMediaType, "unsupported_media_type",
		"the request body must be application/json, not " + strconv.Quote(string(ct))})
	return false
}

// body checks the request body's content type (checkBody) and reads the
// body, at most Limits.MaxBodyBytes of it. The
// server streams bodies (ServerConfig), so nothing of a body is held
// before this point: a declared length over the limit is refused unread,
// and a chunked body is read only up to the limit. The body's bytes are
// counted against MaxBodyBytesInFlight until the caller calls
// releaseBody(held), which it must once it is done with the body.
func (h *Handler) body(ctx *fasthttp.RequestCtx) (_ []byte, held int64, _ bool) {
	if !h.checkBody(ctx) {
		return nil, 0, false
	}
	limit := h.cfg.Limits.MaxBodyBytes
	refuse := func(e apiError) ([]byte, int64, bool) {
		writeAPIError(ctx, e)
		ctx.SetConnectionClose() // the rest of the body may still be on the wire
		return nil, 0, false
	}
	tooLarge := func() apiError {
		return apiError{fasthttp.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("the request body is larger than the limit of %d bytes", limit)}
	}
	n := ctx.Request.Header.ContentLength()
	if n > limit {
		return refuse(tooLarge())
	}
	held = int64(n)
	if n < 0 { // chunked: as long as it may get
		held = int64(limit)
	}
	if h.bodies.Add(held) > h.cfg.MaxBodyBytesInFlight {
		h.bodies.Add(-held)
		return refuse(apiError{fasthttp.StatusServiceUnavailable, "overloaded",
			"the server is reading too many request bodies at once; retry shortly"})
	}
	if n >= 0 || !ctx.Request.IsBodyStream() {
		return ctx.PostBody(), held, true
	}
	b, err := io.ReadAll(io.LimitReader(ctx.RequestBodyStream(), int64(limit)+1))
	if err != nil {
		h.releaseBody(held)
		writeAPIError(ctx, apiError{fasthttp.StatusBadRequest, "bad_request", "the request body could not be read"})
		return nil, 0, false
	}
	if len(b) > limit {
		h.releaseBody(held)
		return refuse(tooLarge())
	}
	return b, held, true
}

// releaseBody returns what body counted against MaxBodyBytesInFlight.
func (h *Handler) releaseBody(held int64) { h.bodies.Add(-held) }

// serveEnrol signs an edge's certificate request when its token proves
// the cluster's authority (Config.Enrol).
func (h *Handler) serveEnrol(ctx *fasthttp.RequestCtx) {
	body, held, ok := h.body(ctx)
	if !ok {
		return
	}
	defer h.releaseBody(held)
	out, err := h.cfg.Enrol(body)
	if err != nil {
		h.log.Warn("edge enrolment refused", "remote", ctx.RemoteIP().String(), "err", err)
		writeAPIError(ctx, apiError{fasthttp.StatusForbidden, "enrolment_refused", err.Error()})
		return
	}
	h.log.Info("edge enrolled", "remote", ctx.RemoteIP().String())
	ctx.SetContentType("application/json")
	ctx.SetBody(out)
}

func (h *Handler) serveCollection(ctx *fasthttp.RequestCtx) {
	if !h.allow(ctx, "GET", "POST") {
		return
	}
	tenant, ok := h.itemTenant(ctx)
	if !ok {
		return
	}
	if ctx.IsPost() {
		if h.unknownParam(ctx) {
			return
		}
		h.serveAdd(ctx, tenant)
		return
	}
	if h.unknownParam(ctx, "type", "cursor", "limit", "consistency", "scope") {
		return
	}
	args := ctx.QueryArgs()
	opts := item.ListOptions{Type: string(args.Peek("type")), Cursor: string(args.Peek("cursor"))}
	if opts.Limit, ok = h.limit(ctx); !ok {
		return
	}
	rctx, err := readConsistency(ctx)
	if err != nil {
		h.writeError(ctx, err)
		return
	}
	switch s := string(args.Peek("scope")); s {
	case "", "region":
	case "global":
		if h.coreOnly(ctx, "a list of every region") {
			return
		}
		rctx = item.WithGlobalScope(rctx)
	default:
		h.writeError(ctx, item.Invalid("invalid_scope", "scope must be region or global, not %q", s))
		return
	}
	page, err := h.be.List(rctx, tenant, opts)
	if err != nil {
		h.writeError(ctx, err)
		return
	}
	writeFresh(ctx, func(b []byte) []byte { return appendPage(b, page) })
}

// writeFresh answers 200 with the JSON that appendBody appends, reusing
// the response's buffer, marked for caches as never to be reused unasked.
func writeFresh(ctx *fasthttp.RequestCtx, appendBody func([]byte) []byte) {
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	b := ctx.Response.SwapBody(nil)
	ctx.Response.SwapBody(append(appendBody(b[:0]), '\n'))
}

// remoteFinder is a backend that runs finds where the data is: an edge's
// cores (wire.MethodFind), whose indexes answer in milliseconds what the
// edge could only answer by listing every item across the network.
type remoteFinder interface {
	Find(ctx context.Context, tenant string, raw []byte) (*query.Result, error)
}

// serveFind answers POST /v1/find: a query (package query) run on the
// backend (its vector index, or exact search over its lists), or, on an
// edge, sent to a core once it parsed here.
func (h *Handler) serveFind(ctx *fasthttp.RequestCtx) {
	if !h.allow(ctx, "POST") {
		return
	}
	tenant, ok := h.itemTenant(ctx)
	if !ok || h.unknownParam(ctx) {
		return
	}
	body, held, ok := h.body(ctx)
	if !ok {
		return
	}
	defer h.releaseBody(held)
	q, err := query.Parse(body, h.cfg.Limits)
	if err != nil {
		h.writeError(ctx, err)
		return
	}
	var res *query.Result
	if f, ok := h.be.(remoteFinder); ok {
		res, err = f.Find(ctx, tenant, body)
	} else {
		res, err = query.Find(ctx, h.be, tenant, q)
	}
	if err != nil {
		h.writeError(ctx, err)
		return
	}
	writeFresh(ctx, func(b []byte) []byte { return appendFindResult(b, res, q.Near != nil) })
}

// serveConflicts answers GET /v1/conflicts: a page of the tenant's
// conflict log (item.ConflictLog), oldest first, from ?since= (RFC 3339)
// or ?cursor=. A backend without one (not a cluster) has no conflicts.
func (h *Handler) serveConflicts(ctx *fasthttp.RequestCtx) {
	if !h.allow(ctx, "GET") {
		return
	}
	tenant, ok := h.itemTenant(ctx)
	if !ok || h.unknownParam(ctx, "since", "cursor", "limit", "consistency") || h.coreOnly(ctx, "the conflict log") {
		return
	}
	args := ctx.QueryArgs()
	opts := item.ConflictOptions{Cursor: string(args.Peek("cursor"))}
	if s := args.Peek("since"); len(s) > 0 {
		t, err := time.Parse(time.RFC3339Nano, string(s))
		if err != nil {
			h.writeError(ctx, item.Invalid("invalid_since", "since must be an RFC 3339 time, such as a conflict's resolvedAt"))
			return
		}
		opts.Since = t
	}
	if opts.Limit, ok = h.limit(ctx); !ok {
		return
	}
	rctx, err := readConsistency(ctx)
	if err != nil {
		h.writeError(ctx, err)
		return
	}
	page := &item.ConflictPage{Conflicts: []*item.Conflict{}}
	if log, ok := h.be.(item.ConflictLog); ok {
		if page, err = log.Conflicts(rctx, tenant, opts); err != nil {
			h.writeError(ctx, err)
			return
		}
	} else if start, err := opts.Start(); err != nil {
		h.writeError(ctx, err)
		return
	} else {
		page.Resume = start.Encode() // one node, no regions: an empty log
	}
	body, err := json.Marshal(page)
	if err != nil {
		h.writeError(ctx, err)
		return
	}
	writeFresh(ctx, func(b []byte) []byte { return append(b, body...) })
}

// serveAdd answers POST /v1/items. The id is settled here, before the
// backend sees the write: from the Idempotency-Key, else the body's, else
// a new ULID. So a retry by the client (with the key) or a failover by an
// edge's upstream names the item the first attempt named, and Add, which
// only creates, cannot store it twice.
func (h *Handler) serveAdd(ctx *fasthttp.RequestCtx, tenant string) {
	key, err := idempotencyKey(ctx)
	if err != nil {
		h.writeError(ctx, err)
		return
	}
	body, held, ok := h.body(ctx)
	if !ok {
		return
	}
	defer h.releaseBody(held)
	it, err := DecodeItem(body, &h.cfg.Limits)
	if err != nil {
		h.writeError(ctx, err)
		return
	}
	switch {
	case key != "" && it.ID != "":
		h.writeError(ctx, item.Invalid("id_with_idempotency_key",
			"a POST with an Idempotency-Key gets its id from the key; leave id out of the body, or PUT to the id"))
		return
	case key != "":
		it.ID = KeyedID(key)
	case it.ID == "":
		it.ID = ulid.Make().String()
	}
	wctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteTimeout)
	defer cancel()
	out, err := h.be.Add(wctx, tenant, it)
	replayed := false
	if key != "" && errors.Is(err, item.ErrConflict) {
		out, replayed, err = h.replay(wctx, tenant, it)
	}
	location := "/v1/items/" + url.PathEscape(it.ID)
	if err != nil {
		h.writeError(ctx, err)
		if ctx.Response.StatusCode() == fasthttp.StatusServiceUnavailable {
			// The write may have happened (outcome_unknown, a timeout):
			// say where the item is if it did, so the client can look.
			ctx.Response.Header.Set("Location", location)
		}
		return
	}
	h.cacheWrite(out)
	ctx.Response.Header.Set("Location", location)
	if replayed {
		ctx.Response.Header.Set("Idempotent-Replayed", "true")
	}
	h.writeItem(ctx, fasthttp.StatusCreated, out)
}

// unknownParam answers 400 naming the first query parameter not in
// allowed, and reports whether it did. A parameter the API does not know
// is never ignored: GET /v1/items?metadata.city=Oslo returning every
// item, as if filtered, would be worse than an error.
func (h *Handler) unknownParam(ctx *fasthttp.RequestCtx, allowed ...string) bool {
	var bad []byte
	ctx.QueryArgs().VisitAll(func(k, _ []byte) {
		if bad == nil && !slices.Contains(allowed, string(k)) {
			bad = k
		}
	})
	if bad == nil {
		return false
	}
	msg := fmt.Sprintf("unknown query parameter %q", bad)
	switch {
	case len(allowed) == 0:
		msg += "; this request takes none"
	default:
		msg += "; this request takes " + strings.Join(allowed, ", ")
	}
	if bytes.HasPrefix(bad, []byte("metadata.")) || bytes.HasPrefix(bad, []byte("data.")) {
		msg += " (a list filters by type only; POST /v1/find takes a where on metadata)"
	}
	h.writeError(ctx, item.Invalid("unknown_parameter", "%s", msg))
	return true
}

func (h *Handler) serveItem(ctx *fasthttp.RequestCtx, rawID []byte) {
	if !h.allow(ctx, "GET", "PUT", "PATCH", "DELETE") {
		return
	}
	// The cache's hit path: no unescaping, no allocation. It resolves the
	// tenant (and charges its rate limit) once for the whole request.
	var tenant string
	fast := h.cfg.Cache != nil && (ctx.IsGet() || ctx.IsHead()) && bytes.IndexByte(rawID, '%') < 0 && len(rawID) <= h.cfg.Limits.MaxIDBytes &&
		ctx.QueryArgs().Len() == 0 // ?consistency= is read on the slow path
	if fast {
		t, ok := h.itemTenant(ctx)
		if !ok {
			return
		}
		tenant = t
		if a, fresh := h.cfg.Cache.Lookup(tenant, rawID); fresh {
			h.serveAnswer(ctx, a, "HIT")
			return
		}
	}
	id, err := url.PathUnescape(string(rawID))
	if err != nil {
		h.writeError(ctx, item.Invalid("invalid_id", "the id in the path is not valid percent-encoding"))
		return
	}
	if len(id) > h.cfg.Limits.MaxIDBytes {
		h.writeError(ctx, item.Invalid("id_too_long", "id is %d bytes, the limit is %d", len(id), h.cfg.Limits.MaxIDBytes))
		return
	}
	if !fast {
		t, ok := h.itemTenant(ctx)
		if !ok {
			return
		}
		tenant = t
	}
	if ctx.IsGet() || ctx.IsHead() {
		if h.unknownParam(ctx, "consistency", "meta") {
			return
		}
	} else if h.unknownParam(ctx) {
		return
	}
	cond, err := conditions(ctx)
	if err != nil {
		h.writeError(ctx, err)
		return
	}
	m := ctx.Method()
	switch string(m) {
	case "GET", "HEAD":
		rctx, err := readConsistency(ctx)
		if err != nil {
			h.writeError(ctx, err)
			return
		}
		if (item.GlobalReads(rctx) || ctx.QueryArgs().Has("meta")) && h.coreOnly(ctx, "a global read or an item's meta") {
			return
		}
		meta := ctx.QueryArgs().Peek("meta")
		if len(meta) > 0 && string(meta) != "versions" {
			h.writeError(ctx, item.Invalid("invalid_meta", "meta must be versions, not %q", meta))
			return
		}
		// The cache answers unless the client asked for a linearizable
		// read by name: ?consistency=strong goes to the partition's leader.
		if h.cfg.Cache != nil && !explicitlyStrong(ctx) && len(meta) == 0 {
			h.serveCached(ctx, tenant, id)
			return
		}
		it, err := h.be.Get(rctx, tenant, id)
		if err != nil {
			h.writeError(ctx, err)
			return
		}
		if len(meta) > 0 {
			h.serveMeta(ctx, rctx, tenant, it)
			return
		}
		ctx.Response.Header.Set("X-Cache", "MISS")
		if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && etagMatches(inm, it.Version) {
			setETag(ctx, it.Version)
			ctx.Response.Header.Set("Cache-Control", "no-cache")
			ctx.SetStatusCode(fasthttp.StatusNotModified)
			return
		}
		h.writeItem(ctx, fasthttp.StatusOK, it)
	case "PUT":
		body, held, ok := h.body(ctx)
		if !ok {
			return
		}
		defer h.releaseBody(held)
		it, err := DecodeItem(body, &h.cfg.Limits)
		if err != nil {
			h.writeError(ctx, err)
			return
		}
		if it.ID != "" && it.ID != id {
			h.writeError(ctx, item.Invalid("id_mismatch", "the body's id %q differs from the path's %q", it.ID, id))
			return
		}
		it.ID = id
		wctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteTimeout)
		defer cancel()
		out, created, err := h.be.Put(wctx, tenant, it, cond)
		if err != nil {
			h.writeError(ctx, err)
			return
		}
		status := fasthttp.StatusOK
		if created {
			status = fasthttp.StatusCreated
		}
		h.cacheWrite(out)
		h.writeItem(ctx, status, out)
	case "PATCH":
		body, held, ok := h.body(ctx)
		if !ok {
			return
		}
		defer h.releaseBody(held)
		bodyID, p, err := DecodePatch(body, &h.cfg.Limits)
		if err != nil {
			h.writeError(ctx, err)
			return
		}
		if bodyID != "" && bodyID != id {
			h.writeError(ctx, item.Invalid("id_mismatch", "the body's id %q differs from the path's %q", bodyID, id))
			return
		}
		wctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteTimeout)
		defer cancel()
		out, err := h.be.Patch(wctx, tenant, id, p, cond)
		if err != nil {
			h.writeError(ctx, err)
			return
		}
		h.cacheWrite(out)
		h.writeItem(ctx, fasthttp.StatusOK, out)
	case "DELETE":
		wctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteTimeout)
		defer cancel()
		if err := h.be.Delete(wctx, tenant, id, cond); err != nil {
			h.writeError(ctx, err)
			return
		}
		if h.cfg.Cache != nil {
			h.cfg.Cache.Deleted(tenant, id)
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}
}

func (h *Handler) writeItem(ctx *fasthttp.RequestCtx, status int, it *item.Item) {
	ctx.SetStatusCode(status)
	ctx.SetContentTypeBytes(jsonCT)
	setETag(ctx, it.Version)
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("Age", "0")
	if len(ctx.Response.Header.Peek("X-Cache")) == 0 {
		ctx.Response.Header.Set("X-Cache", "MISS")
	}
	// Render into the response's own buffer, which fasthttp keeps across
	// requests on a connection: no allocation for the body.
	b := ctx.Response.SwapBody(nil)
	ctx.Response.SwapBody(append(appendItem(b[:0], it), '\n'))
}

// limit reads ?limit= (0 when absent), answering a bad one.
func (h *Handler) limit(ctx *fasthttp.RequestCtx) (int, bool) {
	l := ctx.QueryArgs().Peek("limit")
	if len(l) == 0 {
		return 0, true
	}
	n, err := strconv.Atoi(string(l))
	if err != nil || n < 1 || n > item.MaxListLimit {
		h.writeError(ctx, item.Invalid("invalid_limit", "limit must be a number between 1 and %d", item.MaxListLimit))
		return 0, false
	}
	return n, true
}

// coreOnly refuses, at an edge, a request only a core answers.
func (h *Handler) coreOnly(ctx *fasthttp.RequestCtx, what string) bool {
	if !h.cfg.Edge {
		return false
	}
	h.writeError(ctx, item.Invalid("core_only", "%s is served by the cores of a federation, not by an edge", what))
	return true
}

// serveMeta answers a GET with ?meta=versions: the item with its version
// vector and conflict count (item.Meta) in "meta". A backend that is not a
// federation's has one region: the item's version is the whole vector.
func (h *Handler) serveMeta(ctx *fasthttp.RequestCtx, rctx context.Context, tenant string, it *item.Item) {
	m := &item.Meta{Versions: map[string]string{}}
	if r, ok := h.be.(item.MetaReader); ok {
		var err error
		if m, err = r.ItemMeta(rctx, tenant, it.ID); err != nil {
			h.writeError(ctx, err)
			return
		}
	} else {
		m.Versions[""] = it.Version
	}
	mb, err := json.Marshal(m)
	if err != nil {
		h.writeError(ctx, err)
		return
	}
	h.writeItem(ctx, fasthttp.StatusOK, it)
	b := ctx.Response.Body()
	// The item's JSON ends in "}\n": add the member before the brace.
	out := append(append(append(append([]byte(nil), b[:len(b)-2]...), `,"meta":`...), mb...), "}\n"...)
	ctx.Response.SetBodyRaw(out)
}

// serveCached answers a GET from the cache, or as a miss: one backend
// request per key at a time (concurrent misses share it), the answer
// cached; while no backend answers, a stale answer is served rather than
// an error.
func (h *Handler) serveCached(ctx *fasthttp.RequestCtx, tenant, id string) {
	a, stale, err := h.cfg.Cache.Load(tenant, id, func() (*item.Item, error) {
		start := time.Now()
		it, err := h.be.Get(context.Background(), tenant, id)
		h.metrics.backendGet.Observe(time.Since(start).Seconds())
		if errors.Is(err, item.ErrNotFound) {
			return nil, nil // a negative answer
		}
		return it, err
	})
	switch {
	case err != nil:
		h.writeError(ctx, err)
		ctx.Response.Header.Set("X-Cache", "MISS")
	case stale:
		h.serveAnswer(ctx, a, "STALE")
	default:
		h.serveAnswer(ctx, a, "MISS")
	}
}

// serveAnswer writes a cached answer. It does not allocate.
func (h *Handler) serveAnswer(ctx *fasthttp.RequestCtx, a *Answer, how string) {
	if a.Body == nil {
		writeAPIError(ctx, apiError{fasthttp.StatusNotFound, "not_found", "item not found"})
		ctx.Response.Header.Set("X-Cache", how)
		return
	}
	ctx.Response.Header.Set("X-Cache", how)
	ctx.Response.Header.SetBytesV("ETag", a.ETag)
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	var ab [20]byte
	age := max(time.Now().UnixNano()-a.Stored, 0) / int64(time.Second)
	ctx.Response.Header.SetBytesV("Age", strconv.AppendInt(ab[:0], age, 10))
	if inm := ctx.Request.Header.Peek("If-None-Match"); len(inm) > 0 && etagMatches(inm, string(a.ETag[1:len(a.ETag)-1])) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentTypeBytes(jsonCT)
	ctx.Response.SetBodyRaw(a.Body) // immutable: shared, not copied
}

// cacheWrite puts an item this handler just wrote into the cache.
func (h *Handler) cacheWrite(it *item.Item) {
	if h.cfg.Cache != nil {
		h.cfg.Cache.Wrote(it)
	}
}

func setETag(ctx *fasthttp.RequestCtx, version string) {
	var buf [64]byte
	ctx.Response.Header.SetBytesV("ETag", appendETag(buf[:0], version))
}

// conditions reads If-Match and If-None-Match. Only "*" is meaningful in
// If-None-Match on a write.
func conditions(ctx *fasthttp.RequestCtx) (item.Cond, error) {
	var c item.Cond
	if im := bytes.TrimSpace(ctx.Request.Header.Peek("If-Match")); len(im) > 0 {
		v, ok := parseETag(im)
		if !ok {
			return c, item.Invalid("invalid_if_match", "If-Match must be * or one quoted ETag")
		}
		c.IfMatch = v
	}
	if !ctx.IsGet() && !ctx.IsHead() {
		if inm := bytes.TrimSpace(ctx.Request.Header.Peek("If-None-Match")); len(inm) > 0 {
			if string(inm) != "*" {
				return c, item.Invalid("invalid_if_none_match", "on writes If-None-Match must be *")
			}
			c.IfNoneMatch = true
		}
	}
	return c, nil
}

// parseETag accepts *, "v" and W/"v" (weak tags compare like strong ones:
// versions are exact).
func parseETag(b []byte) (string, bool) {
	if string(b) == "*" {
		return "*", true
	}
	b = bytes.TrimPrefix(b, []byte("W/"))
	if len(b) < 3 || b[0] != '"' || b[len(b)-1] != '"' || bytes.ContainsAny(b[1:len(b)-1], "\", ") {
		return "", false
	}
	return string(b[1 : len(b)-1]), true
}

func etagMatches(header []byte, version string) bool {
	for _, part := range bytes.Split(header, []byte(",")) {
		v, ok := parseETag(bytes.TrimSpace(part))
		if ok && (v == "*" || v == version) {
			return true
		}
	}
	return false
}

func (h *Handler) serveMetrics(ctx *fasthttp.RequestCtx) {
	snap := h.be.Metrics()
	if h.cfg.Cache != nil {
		snap.Cache = h.cfg.Cache.Stats()
	}
	b, err := marshalIndent(snap)
	if err != nil {
		h.writeError(ctx, err)
		return
	}
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBody(b)
}

// explicitlyStrong reports whether the request named a linearizable read
// (?consistency=strong or linearizable), which a cache must not answer.
func explicitlyStrong(ctx *fasthttp.RequestCtx) bool {
	switch string(ctx.QueryArgs().Peek("consistency")) {
	case "strong", "linearizable":
		return true
	}
	return false
}

// readConsistency reads ?consistency=: "strong" (the default: the read
// sees every acknowledged write) or "stale" (the nearest replica answers,
// possibly behind by its replication lag, without a round trip to the
// partition's leader).
func readConsistency(ctx *fasthttp.RequestCtx) (context.Context, error) {
	switch c := string(ctx.QueryArgs().Peek("consistency")); c {
	case "", "strong", "linearizable":
		return context.Background(), nil
	case "stale":
		return item.WithStaleReads(context.Background()), nil
	case "global":
		return item.WithGlobalReads(context.Background()), nil
	default:
		return nil, item.Invalid("invalid_consistency", "consistency must be strong, stale or global, not %q", c)
	}
}
