package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soullabs/brainy/transport/pki"
)

func TestAuthentication(t *testing.T) {
	foreignCA, err := pki.NewCA("foreign CA")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		server func(t *testing.T) Config
		client func(t *testing.T) Config
		strip  bool // the client presents no certificate
		want   error
	}{
		{
			name:   "cluster credentials",
			server: func(t *testing.T) Config { return nodeConfig(t, "server") },
			client: func(t *testing.T) Config { return nodeConfig(t, "client") },
		},
		{
			name:   "client certificate from another CA",
			server: func(t *testing.T) Config { return nodeConfig(t, "server") },
			client: func(t *testing.T) Config {
				// It trusts the cluster CA but its certificate is foreign.
				cfg := LocalConfig(testBundle(t, foreignCA, "intruder").TLSConfig())
				cfg.TLS.RootCAs = testBundle(t, clusterCA(), "x").CAs
				return cfg
			},
			want: ErrUnauthenticated,
		},
		{
			name:   "client without certificate",
			server: func(t *testing.T) Config { return nodeConfig(t, "server") },
			client: func(t *testing.T) Config { return nodeConfig(t, "client") },
			strip:  true,
			want:   ErrUnauthenticated,
		},
		{
			name: "server certificate from another CA",
			server: func(t *testing.T) Config {
				cfg := LocalConfig(testBundle(t, foreignCA, "impostor").TLSConfig())
				cfg.TLS.ClientCAs = testBundle(t, clusterCA(), "x").CAs
				return cfg
			},
			client: func(t *testing.T) Config { return nodeConfig(t, "client") },
			want:   ErrUnauthenticated,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached := make(chan struct{}, 1)
			srv := startServer(t, tt.server(t), map[uint16]HandlerFunc{
				mEcho: func(ctx context.Context, p *Peer, req []byte) ([]byte, error) {
					reached <- struct{}{}
					return echo(ctx, p, req)
				},
			})
			c := newClient(t, tt.client(t))
			if tt.strip {
				c.tlsConf.Certificates = nil
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, err := c.Call(ctx, srv.Addr().String(), mEcho, []byte("hi"))
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			t.Logf("refused: %v", err)
			select {
			case <-reached:
				t.Fatal("handler ran for an unauthenticated peer")
			default:
			}
			if n := len(srv.Peers()); n != 0 {
				t.Fatalf("server accepted %d unauthenticated connections", n)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tlsConf := testBundle(t, clusterCA(), "n").TLSConfig()
	tests := []struct {
		name   string
		mutate func(*Config)
		server bool
		want   []string // substrings of the error; none: valid
	}{
		{name: "default", mutate: func(*Config) {}},
		{name: "no TLS", mutate: func(c *Config) { c.TLS = nil }, want: []string{"TLS must be set"}},
		{name: "no certificate", mutate: func(c *Config) { c.TLS = &tls.Config{} }, want: []string{"TLS must have a certificate"}},
		{name: "TLS 1.2 only", mutate: func(c *Config) { c.TLS.MaxVersion = tls.VersionTLS12 }, want: []string{"TLS 1.3"}},
		{name: "server without client auth", server: true, mutate: func(c *Config) { c.TLS.ClientAuth = tls.NoClientCert }, want: []string{"RequireAndVerifyClientCert"}},
		{
			name: "every problem at once",
			mutate: func(c *Config) {
				c.ListenAddr = "nope"
				c.MaxFrameBytes = -1
				c.KeepAlivePeriod = c.IdleTimeout
				c.MaxConcurrentStreams = -3
				c.StatelessResetKey = []byte("short")
			},
			want: []string{"ListenAddr", "MaxFrameBytes (-1)", "KeepAlivePeriod", "MaxConcurrentStreams (-3)", "StatelessResetKey"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig(tlsConf.Clone())
			tt.mutate(&cfg)
			before := cfg
			var err error
			if tt.server {
				err = cfg.validServer()
			} else {
				err = cfg.Validate()
			}
			if cfg.ListenAddr != before.ListenAddr || cfg.MaxFrameBytes != before.MaxFrameBytes {
				t.Fatal("Validate changed the config")
			}
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("invalid config accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestProfiles(t *testing.T) {
	tlsConf := testBundle(t, clusterCA(), "n").TLSConfig()
	for name, cfg := range map[string]Config{
		"default":       DefaultConfig(tlsConf),
		"local":         LocalConfig(tlsConf),
		"fast failover": FastFailoverConfig(tlsConf),
	} {
		if err := cfg.validServer(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestJoinToken(t *testing.T) {
	token := []byte("cluster-secret-0123456789")
	other := []byte("another-secret-0123456789")
	tests := []struct {
		name                   string
		serverToken, clientTok []byte
		want                   error
	}{
		{name: "same token", serverToken: token, clientTok: token},
		{name: "wrong token", serverToken: token, clientTok: other, want: ErrUnauthenticated},
		{name: "client without token", serverToken: token, want: ErrUnauthenticated},
		{name: "server without token", clientTok: token, want: ErrUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scfg := nodeConfig(t, "server")
			scfg.JoinToken = tt.serverToken
			var reached atomic.Bool
			srv := startServer(t, scfg, map[uint16]HandlerFunc{
				mEcho: func(ctx context.Context, p *Peer, req []byte) ([]byte, error) {
					reached.Store(true)
					return echo(ctx, p, req)
				},
			})
			ccfg := nodeConfig(t, "client")
			ccfg.JoinToken = tt.clientTok
			c := newClient(t, ccfg)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			for i := range 3 { // the first and later calls on the same connection
				got, err := c.Call(ctx, srv.Addr().String(), mEcho, []byte("hi"))
				if tt.want == nil {
					if err != nil || string(got) != "hi" {
						t.Fatalf("call %d: %q, %v", i, got, err)
					}
					continue
				}
				if !errors.Is(err, tt.want) {
					t.Fatalf("call %d: err = %v, want %v", i, err, tt.want)
				}
				t.Logf("refused: %v", err)
			}
			if tt.want != nil && reached.Load() {
				t.Fatal("handler ran without a valid join token")
			}
		})
	}
}
