package loadtest

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/valyala/fasthttp"
)

// maxStatus bounds the status array; codes outside [0, maxStatus) count as 0.
const maxStatus = 1000

// maxTransportKinds bounds the distinct transport error names kept per
// interval; further kinds count as "other".
const maxTransportKinds = 16

// interval accumulates what workers record between two collector ticks.
type interval struct {
	lat, svc  *hdrhistogram.Histogram // svc is nil in the closed loop
	ops       [numOps]*opInterval     // nil for ops the workload never sends
	requests  int64
	errors    int64
	status    [maxStatus]int64
	transport map[string]int64
}

type opInterval struct {
	requests, errors int64
	lat              *hdrhistogram.Histogram
}

func newInterval(open bool, ops []Op) *interval {
	iv := &interval{lat: newHDR(), transport: map[string]int64{}}
	if open {
		iv.svc = newHDR()
	}
	for _, op := range ops {
		iv.ops[op] = &opInterval{lat: newHDR()}
	}
	return iv
}

func (iv *interval) reset() {
	iv.lat.Reset()
	if iv.svc != nil {
		iv.svc.Reset()
	}
	for _, o := range iv.ops {
		if o != nil {
			o.requests, o.errors = 0, 0
			o.lat.Reset()
		}
	}
	iv.requests, iv.errors = 0, 0
	clear(iv.status[:])
	clear(iv.transport)
}

// add merges o into iv.
func (iv *interval) add(o *interval) {
	if o.requests > 0 {
		iv.lat.Merge(o.lat)
		if iv.svc != nil && o.svc != nil {
			iv.svc.Merge(o.svc)
		}
	}
	for i, oo := range o.ops {
		if oo != nil && iv.ops[i] != nil && (oo.requests > 0 || oo.errors > 0) {
			iv.ops[i].requests += oo.requests
			iv.ops[i].errors += oo.errors
			iv.ops[i].lat.Merge(oo.lat)
		}
	}
	iv.requests += o.requests
	iv.errors += o.errors
	for i, n := range o.status {
		iv.status[i] += n
	}
	for k, n := range o.transport {
		iv.addTransport(k, n)
	}
}

func (iv *interval) addTransport(kind string, n int64) {
	if _, ok := iv.transport[kind]; !ok && len(iv.transport) >= maxTransportKinds {
		kind = "other"
	}
	iv.transport[kind] += n
}

// shard is a lock-protected interval shared by a few workers, so the
// collector can swap it out once a second while workers keep recording.
type shard struct {
	mu  sync.Mutex
	cur *interval // guarded by mu; workers record here
	// spare is owned by the collector: it swaps spare and cur under mu.
	spare *interval
}

// record records one completed request or transport error.
// lat is measured from the intended send time (open) or the send time
// (closed); svc from the send time (open only).
func (s *shard) record(op Op, status int, err error, lat, svc time.Duration) {
	s.mu.Lock()
	iv := s.cur
	o := iv.ops[op]
	if err != nil {
		iv.errors++
		iv.addTransport(classifyError(err), 1)
		if o != nil {
			o.errors++
		}
		s.mu.Unlock()
		return
	}
	iv.requests++
	recordUS(iv.lat, lat)
	if iv.svc != nil {
		recordUS(iv.svc, svc)
	}
	if status < 0 || status >= maxStatus {
		status = 0
	}
	iv.status[status]++
	isErr := status >= 400 || status < 100
	if isErr {
		iv.errors++
	}
	if o != nil {
		o.requests++
		recordUS(o.lat, lat)
		if isErr {
			o.errors++
		}
	}
	s.mu.Unlock()
}

// swap hands the collector everything recorded since the last swap.
func (s *shard) swap() *interval {
	s.mu.Lock()
	s.cur, s.spare = s.spare, s.cur
	s.mu.Unlock()
	return s.spare
}

// classifyError names a transport error with a small, bounded vocabulary.
func classifyError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no free connections"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.As(err, new(*net.DNSError)):
		return "dns"
	case errors.As(err, new(*net.OpError)):
		return "network"
	}
	return "other"
}
