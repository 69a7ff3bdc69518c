package transport

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/quic-go/quic-go"
)

// ALPN is the TLS application protocol every connection negotiates.
const ALPN = "brainy/1"

// DefaultMaxFrameBytes is the default limit on a frame's body.
const DefaultMaxFrameBytes = 4 << 20

// maxFrameLimit is the largest MaxFrameBytes a frame's 32-bit length field
// can express with room to spare.
const maxFrameLimit = 1 << 30

// Config configures a Server and a Client. A node usually builds one Config
// and uses it for both. Zero fields take the defaults EnsureDefaults
// documents; DefaultConfig, LocalConfig and FastFailoverConfig are complete
// profiles.
type Config struct {
	// ListenAddr is the UDP address the Server listens on. The Client binds
	// its own socket to the same host with port 0, so a Client configured
	// for loopback only reaches loopback peers.
	// Default "127.0.0.1:7947" (loopback unless told otherwise).
	ListenAddr string

	// TLS holds the node's certificate and the cluster CA, for example from
	// pki.Bundle.TLSConfig. Required. The transport uses a copy with
	// MinVersion TLS 1.3 and NextProtos [ALPN]. The Server requires
	// ClientAuth tls.RequireAndVerifyClientCert (mutual TLS); the Client
	// sends Certificates and verifies the server against RootCAs and
	// ServerName (the dialled host when ServerName is empty).
	TLS *tls.Config

	// MaxFrameBytes bounds the body of every frame this side sends or
	// accepts. A larger incoming frame is rejected from its header, before
	// anything is allocated, and the stream is reset; a larger outgoing
	// frame fails with ErrFrameTooLarge without being sent. Both sides of a
	// connection should use the same value. Default 4 MiB; at most 1 GiB.
	MaxFrameBytes int

	// HandshakeTimeout bounds dialling a peer, TLS handshake included.
	// Default 5s.
	HandshakeTimeout time.Duration

	// IdleTimeout closes a connection that received nothing for this long;
	// with keep-alives this is how a silently dead peer is detected, so it
	// bounds how late OnDisconnect fires for a crashed host. Shorter
	// detects failure sooner but risks closing healthy connections on a
	// lossy link. Default 10s.
	IdleTimeout time.Duration

	// KeepAlivePeriod is how often an otherwise idle connection sends a
	// PING. It must be below IdleTimeout; a third of it tolerates two lost
	// PINGs. Default IdleTimeout/3.
	KeepAlivePeriod time.Duration

	// MaxConcurrentStreams is how many streams the peer may have open on one
	// connection: its calls (to a Server) or pushes (to a Client) in flight,
	// plus up to 64 idle streams it keeps for reuse. A call beyond the limit
	// waits for a stream. Each open stream costs the serving side a
	// goroutine. Default 1024.
	MaxConcurrentStreams int

	// StatelessResetKey, when set, lets the Server answer packets for
	// connections it no longer knows (it restarted) with a stateless
	// reset, so clients notice the restart at once instead of after
	// IdleTimeout. It must stay the same across restarts and must be
	// secret. Default: derived from the TLS certificate's private key.
	StatelessResetKey []byte

	// JoinToken, when set, is a cluster secret checked on every connection
	// in addition to mutual TLS: the client proves it knows the token
	// (an HMAC bound to the TLS session, so it cannot be replayed) before
	// its first request, and the server closes connections that don't.
	// All nodes must have the same token. At least 16 bytes. Default none.
	JoinToken []byte

	// Logger receives connection events (never per-request logs). nil
	// discards.
	Logger *slog.Logger
}

// DefaultConfig returns the production profile with tlsConf as TLS.
func DefaultConfig(tlsConf *tls.Config) Config {
	c := Config{TLS: tlsConf}
	c.EnsureDefaults()
	return c
}

// LocalConfig returns a profile for tests on loopback: an ephemeral port and
// fast timers (IdleTimeout 2s, keep-alive every 100ms).
func LocalConfig(tlsConf *tls.Config) Config {
	c := Config{
		ListenAddr:       "127.0.0.1:0",
		TLS:              tlsConf,
		HandshakeTimeout: 2 * time.Second,
		IdleTimeout:      2 * time.Second,
		KeepAlivePeriod:  100 * time.Millisecond,
	}
	c.EnsureDefaults()
	return c
}

// FastFailoverConfig returns DefaultConfig with timers tuned so a silently
// dead peer is noticed within about 750ms (measured on loopback), for the
// sub-second failover target: PINGs every 150ms and IdleTimeout 600ms
// (about four lost PINGs in a row close the connection). It costs a few
// packets per second per connection. A peer that closes or restarts is
// noticed at once with any profile.
func FastFailoverConfig(tlsConf *tls.Config) Config {
	c := Config{
		TLS:             tlsConf,
		IdleTimeout:     600 * time.Millisecond,
		KeepAlivePeriod: 150 * time.Millisecond,
	}
	c.EnsureDefaults()
	return c
}

// EnsureDefaults sets every zero field to its default.
func (c *Config) EnsureDefaults() {
	if c.ListenAddr == "" {
		c.ListenAddr = "127.0.0.1:7947"
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 10 * time.Second
	}
	if c.KeepAlivePeriod == 0 {
		c.KeepAlivePeriod = c.IdleTimeout / 3
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = 1024
	}
}

// Validate reports every problem with c at once. It does not change c; call
// EnsureDefaults first.
func (c *Config) Validate() error {
	var errs []error
	bad := func(s string) { errs = append(errs, errors.New("transport: config: "+s)) }
	if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
		bad("ListenAddr (" + strconv.Quote(c.ListenAddr) + ") must be host:port")
	}
	if c.TLS == nil {
		bad("TLS must be set (mutual TLS is required)")
	} else {
		if len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil {
			bad("TLS must have a certificate")
		}
		if c.TLS.MaxVersion != 0 && c.TLS.MaxVersion < tls.VersionTLS13 {
			bad("TLS.MaxVersion must allow TLS 1.3")
		}
	}
	if c.MaxFrameBytes < 1 || c.MaxFrameBytes > maxFrameLimit {
		bad("MaxFrameBytes (" + strconv.Itoa(c.MaxFrameBytes) + ") must be in [1, 1 GiB]")
	}
	if c.HandshakeTimeout <= 0 {
		bad("HandshakeTimeout (" + c.HandshakeTimeout.String() + ") must be > 0")
	}
	if c.IdleTimeout <= 0 {
		bad("IdleTimeout (" + c.IdleTimeout.String() + ") must be > 0")
	}
	if c.KeepAlivePeriod <= 0 || c.KeepAlivePeriod >= c.IdleTimeout {
		bad("KeepAlivePeriod (" + c.KeepAlivePeriod.String() + ") must be > 0 and < IdleTimeout (" + c.IdleTimeout.String() + ")")
	}
	if c.MaxConcurrentStreams < 1 {
		bad("MaxConcurrentStreams (" + strconv.Itoa(c.MaxConcurrentStreams) + ") must be >= 1")
	}
	if c.JoinToken != nil && len(c.JoinToken) < 16 {
		bad("JoinToken must be at least 16 bytes")
	}
	if c.StatelessResetKey != nil && len(c.StatelessResetKey) < 16 {
		bad("StatelessResetKey must be at least 16 bytes")
	}
	return errors.Join(errs...)
}

// validServer adds the server-only rule: client certificates are verified.
func (c *Config) validServer() error {
	err := c.Validate()
	if c.TLS != nil && c.TLS.ClientAuth != tls.RequireAndVerifyClientCert {
		err = errors.Join(err, errors.New("transport: config: TLS.ClientAuth must be tls.RequireAndVerifyClientCert (mutual TLS is required)"))
	}
	return err
}

func (c *Config) tlsConfig() *tls.Config {
	t := c.TLS.Clone()
	t.MinVersion = tls.VersionTLS13
	t.NextProtos = []string{ALPN}
	return t
}

func (c *Config) quicConfig() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:  c.HandshakeTimeout,
		MaxIdleTimeout:        c.IdleTimeout,
		KeepAlivePeriod:       c.KeepAlivePeriod,
		MaxIncomingStreams:    int64(c.MaxConcurrentStreams),
		MaxIncomingUniStreams: -1,
	}
}

// resetKey returns the stateless reset key: the configured one, or one
// derived from the certificate's private key so it is stable across
// restarts and secret.
func (c *Config) resetKey() *quic.StatelessResetKey {
	var seed []byte
	switch {
	case c.StatelessResetKey != nil:
		seed = c.StatelessResetKey
	case len(c.TLS.Certificates) > 0 && c.TLS.Certificates[0].PrivateKey != nil:
		der, err := x509.MarshalPKCS8PrivateKey(c.TLS.Certificates[0].PrivateKey)
		if err != nil {
			return nil
		}
		seed = der
	default:
		return nil
	}
	h := sha256.New()
	h.Write([]byte("brainy transport stateless reset v1\x00"))
	h.Write(seed)
	var k quic.StatelessResetKey
	copy(k[:], h.Sum(nil))
	return &k
}

func (c *Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}
