package netrelay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Latency assertions are lower bounds only: a relay can be slowed by a busy
// machine or the race detector, but it must never deliver early. Upper
// bounds are generous timeouts that only catch hangs.
const patience = 2 * time.Second

// startRelay starts a relay and closes it at cleanup, checking that Close
// leaves none of the relay's goroutines behind.
func startRelay(t *testing.T, cfg Config) *Relay {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	r, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if n := r.live.Load(); n != 0 {
			t.Errorf("%d relay goroutines still running after Close", n)
		}
	})
	return r
}

// startEcho runs a server that echoes UDP datagrams and TCP streams on one
// port, like a node's memberlist port. A TCP connection is echoed until the
// client half-closes, then half-closed in turn.
func startEcho(t *testing.T) string {
	t.Helper()
	var (
		ln  net.Listener
		pc  net.PacketConn
		err error
	)
	for range 100 {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err = net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			break
		}
		ln.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		pc.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// startSink returns a UDP socket that receives what the relay forwards, so
// one-way tests need no echo.
func startSink(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialUDP(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, patience)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// recv reads one datagram, or returns nil if none arrives within d.
func recv(t *testing.T, c *net.UDPConn, d time.Duration) []byte {
	t.Helper()
	buf := make([]byte, 64<<10)
	c.SetReadDeadline(time.Now().Add(d))
	n, err := c.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil
		}
		// A connected socket reports an ICMP port-unreachable from an
		// earlier send this way: nothing arrived.
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		t.Fatalf("read: %v", err)
	}
	return buf[:n]
}

// udpRoundTrip sends msg and waits for its echo, returning the elapsed time.
func udpRoundTrip(t *testing.T, c *net.UDPConn, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := recv(t, c, patience)
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
	return time.Since(start)
}

// tcpRoundTrip writes msg and reads its echo, returning the elapsed time.
func tcpRoundTrip(t *testing.T, c *net.TCPConn, msg string) time.Duration {
	t.Helper()
	start := time.Now()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(patience))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
	return time.Since(start)
}

// waitFor polls cond until it holds or patience runs out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expectClosed asserts that the peer closes c (EOF or reset) promptly.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(patience))
	buf := make([]byte, 1024)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection still open")
		}
		return
	}
}

func TestUDPEchoDelay(t *testing.T) {
	t.Parallel()
	r := startRelay(t, Config{Target: startEcho(t), Delay: 40 * time.Millisecond})
	c := dialUDP(t, r.Addr())
	if rtt := udpRoundTrip(t, c, "ping"); rtt < 80*time.Millisecond {
		t.Errorf("round trip %v, want >= 80ms (2 x Delay)", rtt)
	}
	r.SetDelay(60 * time.Millisecond)
	if rtt := udpRoundTrip(t, c, "ping2"); rtt < 120*time.Millisecond {
		t.Errorf("round trip after SetDelay %v, want >= 120ms", rtt)
	}
	// Counters are bumped just after each send, so the echo can beat them.
	waitFor(t, "stats to settle", func() bool { return r.Stats().ToClient.Datagrams == 2 })
	s := r.Stats()
	if s.ToTarget.Datagrams != 2 || s.ToTarget.Bytes != 9 || s.ToClient.Bytes != 9 || s.UDPFlows != 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestUDPOrderUnderJitter(t *testing.T) {
	t.Parallel()
	sink := startSink(t)
	r := startRelay(t, Config{
		Target: sink.LocalAddr().String(),
		Delay:  2 * time.Millisecond,
		Jitter: 30 * time.Millisecond,
		Seed:   1,
		UDP:    true,
	})
	c := dialUDP(t, r.Addr())
	const n = 200
	for i := range n {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(i))
		if _, err := c.Write(b[:]); err != nil {
			t.Fatal(err)
		}
		// Pace the burst so the kernel's socket buffers cannot be the
		// ones dropping; this test is about the relay's ordering.
		time.Sleep(100 * time.Microsecond)
	}
	for want := range n {
		b := recv(t, sink, patience)
		if b == nil {
			t.Fatalf("datagram %d never arrived", want)
		}
		if got := binary.BigEndian.Uint32(b); got != uint32(want) {
			t.Fatalf("got datagram %d, want %d: reordered", got, want)
		}
	}
}

// sendNumbered sends n numbered datagrams through r to sink and returns the
// numbers that arrived, once the relay has accounted for all of them.
func sendNumbered(t *testing.T, r *Relay, sink *net.UDPConn, n int) []int {
	t.Helper()
	c := dialUDP(t, r.Addr())
	for i := range n {
		if _, err := c.Write([]byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Microsecond)
	}
	waitFor(t, "relay to account for all datagrams", func() bool {
		s := r.Stats().ToTarget
		return s.Datagrams+s.DroppedDatagrams == uint64(n)
	})
	var got []int
	for range r.Stats().ToTarget.Datagrams {
		b := recv(t, sink, patience)
		if b == nil {
			t.Fatal("delivered datagram missing at sink")
		}
		i, err := strconv.Atoi(string(b))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, i)
	}
	if extra := recv(t, sink, 50*time.Millisecond); extra != nil {
		t.Fatalf("unexpected extra datagram %q", extra)
	}
	return got
}

func TestUDPLoss(t *testing.T) {
	t.Parallel()
	t.Run("all", func(t *testing.T) {
		t.Parallel()
		sink := startSink(t)
		r := startRelay(t, Config{Target: sink.LocalAddr().String(), Loss: 1})
		if got := sendNumbered(t, r, sink, 50); len(got) != 0 {
			t.Fatalf("Loss=1 delivered %v", got)
		}
		if s := r.Stats().ToTarget; s.DroppedDatagrams != 50 {
			t.Errorf("dropped = %d, want 50", s.DroppedDatagrams)
		}
		r.SetLoss(0)
		c := dialUDP(t, r.Addr())
		c.Write([]byte("x"))
		if b := recv(t, sink, patience); string(b) != "x" {
			t.Fatalf("after SetLoss(0) got %q", b)
		}
	})
	t.Run("half", func(t *testing.T) {
		t.Parallel()
		const n = 200
		var runs [2][]int
		for i := range runs {
			sink := startSink(t)
			r := startRelay(t, Config{Target: sink.LocalAddr().String(), Loss: 0.5, Seed: 42})
			runs[i] = sendNumbered(t, r, sink, n)
		}
		if len(runs[0]) == 0 || len(runs[0]) == n {
			t.Fatalf("Loss=0.5 delivered %d of %d", len(runs[0]), n)
		}
		// Same seed and same packet sequence: the same datagrams survive.
		if !slicesEqual(runs[0], runs[1]) {
			t.Errorf("same seed, different survivors:\n%v\n%v", runs[0], runs[1])
		}
	})
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCut(t *testing.T) {
	t.Parallel()
	r := startRelay(t, Config{Target: startEcho(t), Delay: 5 * time.Millisecond})
	u := dialUDP(t, r.Addr())
	udpRoundTrip(t, u, "before")
	tc := dialTCP(t, r.Addr())
	tcpRoundTrip(t, tc, "before")

	r.Cut(true)
	u.Write([]byte("during"))
	if b := recv(t, u, 200*time.Millisecond); b != nil {
		t.Fatalf("UDP passed a cut link: %q", b)
	}
	expectClosed(t, tc)
	// New connections are accepted by the kernel but closed at once.
	expectClosed(t, dialTCP(t, r.Addr()))
	waitFor(t, "TCP connections to be released", func() bool { return r.Stats().TCPActive == 0 })

	r.Cut(false)
	udpRoundTrip(t, u, "after")
	tcpRoundTrip(t, dialTCP(t, r.Addr()), "after")

	s := r.Stats()
	if s.TCPRefused < 1 || s.TCPAccepted != 2 || s.ToTarget.DroppedDatagrams < 1 {
		t.Errorf("stats = %+v", s)
	}
}

func TestTCPEchoDelay(t *testing.T) {
	t.Parallel()
	r := startRelay(t, Config{Target: startEcho(t), Delay: 40 * time.Millisecond, TCP: true})
	c := dialTCP(t, r.Addr())
	if rtt := tcpRoundTrip(t, c, "hello"); rtt < 80*time.Millisecond {
		t.Errorf("round trip %v, want >= 80ms (2 x Delay)", rtt)
	}
}

// TestTCPBulk pushes more data than MaxQueuedBytes through the relay, so the
// reader must pause, and checks that the half-close arrives after all of it.
func TestTCPBulk(t *testing.T) {
	t.Parallel()
	r := startRelay(t, Config{
		Target:         startEcho(t),
		Delay:          time.Millisecond,
		Jitter:         time.Millisecond,
		MaxQueuedBytes: 16 << 10,
	})
	c := dialTCP(t, r.Addr())
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c) // ends at the echoed half-close
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(got), len(want))
	}
	waitFor(t, "connection to be released", func() bool { return r.Stats().TCPActive == 0 })
	if s := r.Stats(); s.ToTarget.TCPBytes != 1<<20 || s.ToClient.TCPBytes != 1<<20 {
		t.Errorf("stats = %+v", s)
	}
}

func TestTwoClients(t *testing.T) {
	t.Parallel()
	r := startRelay(t, Config{Target: startEcho(t), Delay: 10 * time.Millisecond, UDP: true})
	a, b := dialUDP(t, r.Addr()), dialUDP(t, r.Addr())
	for i := range 5 {
		// Both in flight at once, so a mix-up would show.
		ma, mb := "a"+strconv.Itoa(i), "b"+strconv.Itoa(i)
		a.Write([]byte(ma))
		b.Write([]byte(mb))
		if got := recv(t, a, patience); string(got) != ma {
			t.Fatalf("client a got %q, want %q", got, ma)
		}
		if got := recv(t, b, patience); string(got) != mb {
			t.Fatalf("client b got %q, want %q", got, mb)
		}
	}
	if n := r.Stats().UDPFlows; n != 2 {
		t.Errorf("UDPFlows = %d, want 2", n)
	}
}

func TestIdleFlowExpiry(t *testing.T) {
	t.Parallel()
	r := startRelay(t, Config{Target: startEcho(t), idleTimeout: 150 * time.Millisecond})
	c := dialUDP(t, r.Addr())
	udpRoundTrip(t, c, "x")
	waitFor(t, "idle flow to expire", func() bool { return r.Stats().UDPFlows == 0 })
	udpRoundTrip(t, c, "y") // a new flow is made on demand
}

func TestMaxFlows(t *testing.T) {
	t.Parallel()
	r := startRelay(t, Config{Target: startEcho(t), MaxFlows: 1})
	a, b := dialUDP(t, r.Addr()), dialUDP(t, r.Addr())
	udpRoundTrip(t, a, "a")
	b.Write([]byte("b"))
	if got := recv(t, b, 100*time.Millisecond); got != nil {
		t.Fatalf("second flow beyond MaxFlows got %q", got)
	}
	tcpRoundTrip(t, dialTCP(t, r.Addr()), "first")
	expectClosed(t, dialTCP(t, r.Addr()))
}

func TestOddInput(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{},
		{Target: "127.0.0.1:1", Loss: -0.1},
		{Target: "127.0.0.1:1", Loss: 1.5},
		{Target: "127.0.0.1:1", Loss: math.NaN()},
		{Target: "127.0.0.1:1", Delay: -1},
		{Target: "127.0.0.1:1", Listen: "nonsense"},
		{Target: "127.0.0.1:1", Listen: "127.0.0.1:99999"},
		{Target: "127.0.0.1:1", MaxFlows: -1},
	} {
		if r, err := Start(cfg); err == nil {
			r.Close()
			t.Errorf("Start(%+v) succeeded", cfg)
		}
	}

	sink := startSink(t)
	r := startRelay(t, Config{Target: sink.LocalAddr().String(), UDP: true})
	r.SetLoss(math.NaN())
	r.SetLoss(-3)
	r.SetDelay(-time.Second)
	c := dialUDP(t, r.Addr())
	if _, err := c.Write(nil); err != nil {
		t.Fatal(err)
	}
	if b := recv(t, sink, patience); b == nil || len(b) != 0 {
		t.Fatalf("empty datagram: got %v", b)
	}
	big := bytes.Repeat([]byte{0xAB}, 65507) // largest IPv4 UDP payload
	if _, err := c.Write(big); err != nil {
		t.Fatal(err)
	}
	if b := recv(t, sink, patience); !bytes.Equal(b, big) {
		t.Fatalf("largest datagram: got %d bytes", len(b))
	}
	r.SetLoss(7) // clamped to 1
	c.Write([]byte("lost"))
	if b := recv(t, sink, 50*time.Millisecond); b != nil {
		t.Fatalf("SetLoss(7) let %q through", b)
	}

	// A Target that is not listening: UDP gets ICMP errors, TCP dials fail.
	// Neither may break the relay.
	dead := startSink(t)
	deadAddr := dead.LocalAddr().String()
	dead.Close()
	r2 := startRelay(t, Config{Target: deadAddr})
	c2 := dialUDP(t, r2.Addr())
	for range 5 {
		c2.Write([]byte("anyone?"))
		time.Sleep(2 * time.Millisecond)
	}
	expectClosed(t, dialTCP(t, r2.Addr()))
	waitFor(t, "failed dial to be counted", func() bool { return r2.Stats().TCPRefused == 1 })
}

func TestListenSamePort(t *testing.T) {
	t.Parallel()
	echo := startEcho(t)
	r := startRelay(t, Config{Target: echo})
	_, port, _ := net.SplitHostPort(r.Addr())
	if port == "0" {
		t.Fatalf("Addr() = %s", r.Addr())
	}
	// Both transports answer on the one advertised port.
	udpRoundTrip(t, dialUDP(t, r.Addr()), "udp")
	tcpRoundTrip(t, dialTCP(t, r.Addr()), "tcp")

	// With UDP only, TCP is not relayed.
	ru := startRelay(t, Config{Target: echo, UDP: true})
	if c, err := net.DialTimeout("tcp", ru.Addr(), patience); err == nil {
		c.Close()
		// Something else may own the TCP port; that is fine as long as
		// it is not this relay.
		if ru.Stats().TCPAccepted != 0 {
			t.Error("UDP-only relay accepted TCP")
		}
	}
}

// TestClose checks that Close tears down live flows and connections and
// leaves no goroutines behind. It is not parallel so that the process-wide
// goroutine count is meaningful.
func TestClose(t *testing.T) {
	echo := startEcho(t)
	before := runtime.NumGoroutine()

	r, err := Start(Config{Listen: "127.0.0.1:0", Target: echo, Delay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	u := dialUDP(t, r.Addr())
	udpRoundTrip(t, u, "x")
	tc := dialTCP(t, r.Addr())
	tcpRoundTrip(t, tc, "x")
	// Leave data in flight in both transports.
	u.Write([]byte("in flight"))
	tc.Write([]byte("in flight"))

	done := make(chan error, 1)
	go func() { done <- r.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(patience):
		t.Fatal("Close hung")
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := r.live.Load(); n != 0 {
		t.Fatalf("%d relay goroutines running after Close", n)
	}
	expectClosed(t, tc)
	u.Write([]byte("after"))
	if b := recv(t, u, 50*time.Millisecond); b != nil {
		t.Fatalf("closed relay forwarded %q", b)
	}
	// The echo server's per-connection goroutine may take a moment to see
	// the relay's side close.
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}

// TestCutFrom: traffic of one client address is cut both ways while
// another client's passes, and restored after.
func TestCutFrom(t *testing.T) {
	t.Parallel()
	r := startRelay(t, Config{Listen: "127.0.0.1:0", Target: startEcho(t), Delay: time.Millisecond})
	from := func(ip string) *net.UDPConn {
		ua, err := net.ResolveUDPAddr("udp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)}, ua)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	cut, other := from("127.0.0.2"), from("127.0.0.3")
	udpRoundTrip(t, cut, "before")
	r.CutFrom(netip.MustParseAddr("127.0.0.2"), true)
	cut.Write([]byte("during"))
	if b := recv(t, cut, 200*time.Millisecond); b != nil {
		t.Fatalf("UDP from a cut address passed: %q", b)
	}
	udpRoundTrip(t, other, "others pass")
	r.CutFrom(netip.MustParseAddr("127.0.0.2"), false)
	udpRoundTrip(t, cut, "after")
}
