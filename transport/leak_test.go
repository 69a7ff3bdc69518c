package transport

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Closing the client and the server ends every goroutine they started:
// connection loops, serving loops, stream-limit waiters and cancellations.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		srv, err := NewServer(nodeConfig(t, "server"))
		if err != nil {
			t.Fatal(err)
		}
		srv.Handle(mEcho, echo)
		srv.Handle(mBlock, func(ctx context.Context, _ *Peer, _ []byte) ([]byte, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
		served := make(chan error, 1)
		go func() { served <- srv.Serve(context.Background()) }()
		c, err := NewClient(nodeConfig(t, "client"))
		if err != nil {
			t.Fatal(err)
		}
		addr := srv.Addr().String()
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				if _, err := c.Call(context.Background(), addr, mEcho, []byte("x")); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		_, _ = c.Call(ctx, addr, mBlock, nil)
		cancel()
		_ = c.Close()
		_ = srv.Close()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
