package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/internal/item"
)

// heldAdds holds every Add whose data holds "hold" until release is
// closed, after telling entered: a request that keeps its body counted
// for as long as the test wants.
type heldAdds struct {
	*core.Node
	entered chan struct{}
	release chan struct{}
}

func (b *heldAdds) Add(ctx context.Context, tenant string, it *item.Item) (*item.Item, error) {
	if strings.Contains(string(it.Data), "hold") {
		b.entered <- struct{}{}
		<-b.release
	}
	return b.Node.Add(ctx, tenant, it)
}

// TestBodyBytesInFlight: request bodies count against
// MaxBodyBytesInFlight while they are served; a body that does not fit is
// answered 503 overloaded with Retry-After, one that fits still is
// served, and once the bytes are released the refused request succeeds.
func TestBodyBytesInFlight(t *testing.T) {
	held := &heldAdds{entered: make(chan struct{}), release: make(chan struct{})}
	lim := item.Limits{MaxBodyBytes: 1000}
	s := newTestServerWith(t, Config{Limits: lim, MaxBodyBytesInFlight: 1000}, func(n *core.Node) Backend { held.Node = n; return held })
	big := func(marker string) string { return `{"data":"` + marker + strings.Repeat("x", 590) + `"}` } // 600 bytes

	first := make(chan response)
	go func() { first <- s.do(t, "POST", "/v1/items", big("hold")) }()
	<-held.entered // 600 of the 1000 bytes are held
	r := s.do(t, "POST", "/v1/items", big("next"))
	if r.status != 503 || r.errorCode() != "overloaded" || r.header["retry-after"] == "" {
		t.Fatalf("a 600-byte body with 600 of 1000 bytes held: %d %s %v, want 503 overloaded with Retry-After", r.status, r.body, r.header)
	}
	if r := s.do(t, "PUT", "/v1/items/small", `{"data":"`+strings.Repeat("y", 300)+`"}`); r.status != 201 {
		t.Fatalf("a body that fits beside the held one: %d %s", r.status, r.body)
	}
	close(held.release)
	if r := <-first; r.status != 201 {
		t.Fatalf("the held request: %d %s", r.status, r.body)
	}
	if r := s.do(t, "POST", "/v1/items", big("next")); r.status != 201 {
		t.Fatalf("the refused request again, once the bytes were released: %d %s", r.status, r.body)
	}
	if _, err := NewHandler(Config{Limits: lim, MaxBodyBytesInFlight: 999}, s.node); err == nil {
		t.Fatal("NewHandler accepted a body budget below the largest body")
	}
}

// TestMaxConnsPerIP: one client address gets MaxConnsPerIP connections;
// the next is answered 429 and closed, while another address is served,
// and the first address is served again once one of its connections closes.
func TestMaxConnsPerIP(t *testing.T) {
	other := net.IPv4(127, 0, 0, 2)
	if c, err := net.ListenTCP("tcp", &net.TCPAddr{IP: other}); err != nil {
		t.Skipf("127.0.0.2 is not usable here: %v", err)
	} else {
		c.Close()
	}
	h, err := NewHandler(Config{}, nil) // /healthz needs no backend
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ServerConfig{MaxConnsPerIP: 2}, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	dial := func(from net.IP) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from}}
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// status sends GET /healthz on c, unless get is false (a connection the
	// server refuses answers at once; a request sent to it could be lost
	// in the reset), and reads the answer.
	status := func(c net.Conn, get bool) int {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a failure, not a hang, if no answer comes
		if get {
			if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
		}
		var resp fasthttp.Response
		if err := resp.Read(bufio.NewReader(c)); err != nil {
			t.Fatalf("reading an answer: %v", err)
		}
		return resp.StatusCode()
	}
	local := net.IPv4(127, 0, 0, 1)
	a, b := dial(local), dial(local)
	if status(a, true) != 200 || status(b, true) != 200 {
		t.Fatal("the first two connections from 127.0.0.1 were not served")
	}
	if got := status(dial(local), false); got != 429 {
		t.Fatalf("a third connection from 127.0.0.1: %d, want 429", got)
	}
	if got := status(dial(other), true); got != 200 {
		t.Fatalf("a connection from 127.0.0.2 beside them: %d, want 200", got)
	}
	a.Close()
	// The server counts a's close when it reads it: poll.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c := dial(local)
		c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
		var resp fasthttp.Response
		if resp.Read(bufio.NewReader(c)) == nil && resp.StatusCode() == 200 {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("127.0.0.1 was not served again after one of its connections closed")
		}
	}
}

// TestIdleNewConnectionTimesOut408: a connection that sends nothing within
// the read timeout (an HTTP client's spare connection) is closed with 408,
// which clients take as "closed while idle", not with a 400 that arrives as
// the answer to no request; the server goes on serving.
func TestIdleNewConnectionTimesOut408(t *testing.T) {
	h, err := NewHandler(Config{}, nil) // /healthz needs no backend
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ServerConfig{ReadTimeout: 200 * time.Millisecond}, h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	read := func(c net.Conn) *fasthttp.Response {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var resp fasthttp.Response
		if err := resp.Read(bufio.NewReader(c)); err != nil {
			t.Fatalf("reading an answer: %v", err)
		}
		return &resp
	}
	for _, partial := range []string{"", "GET /heal"} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(partial))
		if resp := read(c); resp.StatusCode() != fasthttp.StatusRequestTimeout || !bytes.Contains(resp.Body(), []byte("request_timeout")) {
			t.Fatalf("sent %q and waited: %d %s, want 408 request_timeout", partial, resp.StatusCode(), resp.Body())
		}
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	if resp := read(c); resp.StatusCode() != 200 {
		t.Fatalf("a request after the timeouts: %d", resp.StatusCode())
	}
}
