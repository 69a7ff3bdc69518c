package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// Defaults of the ServerConfig fields.
const (
	DefaultReadTimeout = 30 * time.Second
	DefaultIdleTimeout = 2 * time.Minute
	DefaultMaxConns    = 1 << 16
	// DefaultMaxConnsPerIP leaves room for a load generator or a proxy
	// with hundreds of connections, while one address alone cannot take
	// more than a sixty-fourth of DefaultMaxConns.
	DefaultMaxConnsPerIP = 1024
)

// ServerConfig configures the HTTP server around a Handler. Zero fields
// take their defaults. Every connection holds read and write buffers and
// a goroutine before any request on it is authenticated: the connection
// caps bound that memory. (Request bodies are bounded, once their API key
// is checked, by Config.MaxBodyBytesInFlight.)
type ServerConfig struct {
	// ReadTimeout bounds reading one request, headers and body. Default
	// DefaultReadTimeout (30 s): slow clients cannot hold a connection's
	// buffers forever.
	ReadTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long. Default
	// DefaultIdleTimeout (2 min).
	IdleTimeout time.Duration
	// MaxConns bounds concurrent connections in all (fasthttp's
	// Concurrency); one more is answered 503 and closed. Default
	// DefaultMaxConns (65,536).
	MaxConns int
	// MaxConnsPerIP bounds the concurrent connections from one client IP
	// address; one more is answered 429 and closed. Default
	// DefaultMaxConnsPerIP (1024). Behind a proxy every client has the
	// proxy's address: raise it to the proxy's connection count.
	MaxConnsPerIP int
}

// EnsureDefaults fills zero fields with their defaults.
func (c *ServerConfig) EnsureDefaults() {
	if c.ReadTimeout == 0 {
		c.ReadTimeout = DefaultReadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
}

// Server serves a Handler over HTTP/1.1 with fasthttp.
type Server struct {
	h   *Handler
	srv *fasthttp.Server
}

// NewServer returns a server for h.
func NewServer(cfg ServerConfig, h *Handler) *Server {
	cfg.EnsureDefaults()
	return &Server{h: h, srv: &fasthttp.Server{
		Handler:              h.Serve,
		ErrorHandler:         errorHandler(h.log),
		Name:                 "brainy",
		MaxRequestBodySize:   h.cfg.Limits.MaxBodyBytes,
		ReadTimeout:          cfg.ReadTimeout,
		IdleTimeout:          cfg.IdleTimeout,
		Concurrency:          cfg.MaxConns,
		MaxConnsPerIP:        cfg.MaxConnsPerIP,
		CloseOnShutdown:      true,
		NoDefaultContentType: true,
		TCPKeepalive:         true,
		// Bodies are read by the handler, after the API key and the
		// declared length are checked (Handler.body): without streaming,
		// fasthttp allocates a body's declared Content-Length before any
		// handler runs, so idle connections that only declare a body would
		// hold memory unauthenticated.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		HeaderReceived:               refuseOversized(h.cfg.Limits.MaxBodyBytes),
		Logger:                       printfLogger{h.log},
	}}
}

// refuseOversized makes fasthttp hand a request whose declared body is
// over limit to the handler (which answers 413) after reading one byte of
// it, instead of first waiting for the streaming pre-read (8 KiB) that a
// short or absent body never fills.
func refuseOversized(limit int) func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
	return func(hdr *fasthttp.RequestHeader) fasthttp.RequestConfig {
		if hdr.ContentLength() > limit {
			return fasthttp.RequestConfig{MaxRequestBodySize: 1}
		}
		return fasthttp.RequestConfig{}
	}
}

// Serve answers requests on ln until Shutdown. It returns nil after a
// clean shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("httpapi: serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections, marks the server not ready, and
// waits for in-flight requests to finish or ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.h.SetDraining()
	return s.srv.ShutdownWithContext(ctx)
}

// printfLogger routes fasthttp's connection-level messages (a client that
// sent garbage or hung up) to debug level: they are the client's problem,
// and each has already been answered by errorHandler where possible.
type printfLogger struct{ l *slog.Logger }

func (p printfLogger) Printf(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...))
}
