package transport_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/soullabs/brainy/transport"
	"github.com/soullabs/brainy/transport/pki"
)

// Methods are numbers the application defines.
const (
	methodGet uint16 = iota + 1
	methodSubscribe
	methodInvalidate
)

// A server answers gets and pushes invalidations to subscribed clients; the
// client subscribes from OnConnect, so it resubscribes after every
// reconnect.
func Example() {
	ca, _ := pki.NewCA("example cluster")
	serverCreds, _ := ca.NewBundle("core-1", []string{"127.0.0.1"})
	clientCreds, _ := ca.NewBundle("edge-1", nil)

	srv, err := transport.NewServer(transport.LocalConfig(serverCreds.TLSConfig()))
	if err != nil {
		panic(err)
	}
	var (
		mu   sync.Mutex
		subs = map[*transport.Peer]bool{}
	)
	srv.Handle(methodGet, func(_ context.Context, _ *transport.Peer, key []byte) ([]byte, error) {
		return append([]byte("value of "), key...), nil
	})
	srv.Handle(methodSubscribe, func(_ context.Context, p *transport.Peer, _ []byte) ([]byte, error) {
		mu.Lock()
		subs[p] = true
		mu.Unlock()
		go func() { // drop the subscriber with its connection
			<-p.Done()
			mu.Lock()
			delete(subs, p)
			mu.Unlock()
		}()
		return nil, nil
	})
	go srv.Serve(context.Background())
	defer srv.Close()
	addr := srv.Addr().String()

	c, err := transport.NewClient(transport.LocalConfig(clientCreds.TLSConfig()))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	subscribed := make(chan struct{})
	invalidated := make(chan string, 1)
	c.OnConnect(func(addr string) {
		if _, err := c.Call(context.Background(), addr, methodSubscribe, nil); err == nil {
			subscribed <- struct{}{}
		}
	})
	c.OnPush(func(_ context.Context, _ string, method uint16, msg []byte) error {
		if method == methodInvalidate {
			invalidated <- string(msg)
		}
		return nil
	})

	v, err := c.Call(context.Background(), addr, methodGet, []byte("item-1"))
	fmt.Println(string(v), err)
	<-subscribed

	mu.Lock()
	for p := range subs {
		fmt.Println("push to", p.ID(), p.Push(context.Background(), methodInvalidate, []byte("item-1")))
	}
	mu.Unlock()
	fmt.Println("invalidated", <-invalidated)
	// Output:
	// value of item-1 <nil>
	// push to edge-1 <nil>
	// invalidated item-1
}
