package loadtest

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Progress is a snapshot of a running test, passed to Config.Progress.
type Progress struct {
	// Elapsed is the time since the run started, warm-up included.
	Elapsed time.Duration
	// Remaining is the time left, or -1 when only a request count bounds the run.
	Remaining time.Duration
	// Warmup is true while results are still being discarded.
	Warmup bool
	// Requests and Errors count measured results so far.
	Requests, Errors int64
	// Rate is the throughput of the last second in requests/s.
	Rate float64
	// P99 is the last second's 99th percentile latency.
	P99 time.Duration
	// Late and Dropped count open-model sends so far (Dropped is known only
	// at the end of a run, so it is 0 here unless the run is stopping).
	Late, Dropped int64
}

// worker is one connection and its request loop.
type worker struct {
	id     int
	client *fasthttp.HostClient
	gen    *requestGen
	shard  *shard
	sent   int64 // open model: requests sent; read after the worker exits
	late   int64 // open model: requests sent late
	lateA  *atomic.Int64
}

// runState is shared by a run's goroutines.
type runState struct {
	cfg      Config
	start    time.Time
	deadline time.Time // zero when only Requests bounds the run
	interval float64   // open model: nanoseconds between intended sends
	next     atomic.Int64
	late     atomic.Int64 // open model: running total for progress
}

// Run runs the load test described by cfg (after EnsureDefaults and
// Validate on a copy) and returns what it measured. Cancelling ctx stops the
// run gracefully: in-flight requests finish (bounded by Timeout) and the
// result covers what ran, with Interrupted set.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "loadtest")
	wl, err := newWorkload(&cfg)
	if err != nil {
		return nil, err
	}
	open := cfg.Rate > 0
	ops := []Op{OpURL}
	if cfg.Workload == WorkloadItems {
		ops = ops[:0]
		for op := range OpURL {
			if wl.mix.Weight(op) > 0 {
				ops = append(ops, op)
			}
		}
	}
	perOp := ops
	if len(ops) < 2 {
		perOp = nil // the totals already say it all
	}

	// A few shards are enough to keep lock contention negligible.
	nShards := min(cfg.Connections, 4*runtime.GOMAXPROCS(0))
	shards := make([]*shard, nShards)
	for i := range shards {
		shards[i] = &shard{cur: newInterval(open, perOp), spare: newInterval(open, perOp)}
	}
	workers := make([]*worker, cfg.Connections)
	for i := range workers {
		workers[i] = &worker{
			id:     i,
			client: newClient(&cfg, wl.tmpl),
			gen:    newRequestGen(wl, cfg.Seed, i),
			shard:  shards[i%nShards],
		}
	}

	res := &Result{
		Format: ResultFormat, Label: cfg.Label, Target: cfg.Target, Workload: cfg.Workload,
		Connections: cfg.Connections, Sources: 1, Model: "closed",
		KeyDist: cfg.KeyDist, Keys: cfg.Keys,
	}
	if cfg.Workload == WorkloadItems {
		res.Mix, res.BodySize = wl.mix.String(), cfg.BodySize
	} else {
		res.Method = cfg.Method
		if len(wl.bodies) > 0 {
			res.BodySize = cfg.BodySize
		}
		if !wl.usesKey {
			res.KeyDist, res.Keys = "", 0
		}
	}
	if open {
		res.Model, res.Rate, res.LateAfter = "open", cfg.Rate, cfg.LateAfter.Seconds()
	}

	if cfg.Preload {
		log.Info("preload", "keys", cfg.Keys, "connections", cfg.Connections)
		res.Preload = preload(ctx, &cfg, workers)
		log.Info("preload done", "keys", res.Preload.Keys, "errors", res.Preload.Errors, "elapsed_s", res.Preload.ElapsedS)
		if ctx.Err() != nil {
			res.Interrupted = true
			res.finalize()
			return res, nil
		}
	}

	st := &runState{cfg: cfg, start: time.Now()}
	if cfg.Duration > 0 {
		st.deadline = st.start.Add(cfg.Duration)
	}
	if open {
		st.interval = 1e9 / cfg.Rate
	}
	res.Started = st.start
	log.Info("run start", "target", cfg.Target, "model", res.Model, "connections", cfg.Connections,
		"rate", cfg.Rate, "duration", cfg.Duration, "requests", cfg.Requests, "warmup", cfg.Warmup)

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	// When interrupted, requests due after the interruption were never due:
	// remember when it came so they are not counted as dropped.
	var cancelledAt atomic.Int64
	stopAfter := context.AfterFunc(ctx, func() { cancelledAt.Store(time.Now().UnixNano()) })
	defer stopAfter()
	var wg sync.WaitGroup
	for _, w := range workers {
		w.lateA = &st.late
		wg.Go(func() {
			if open {
				w.runOpen(runCtx, st)
			} else {
				w.runClosed(runCtx, st)
			}
		})
	}
	done := make(chan struct{})
	col := newCollector(st, shards, open, perOp)
	colDone := make(chan struct{})
	go func() {
		defer close(colDone)
		col.loop(done)
	}()
	wg.Wait()
	stop := time.Now()
	close(done)
	<-colDone

	res.Interrupted = ctx.Err() != nil
	res.ElapsedS = stop.Sub(st.start).Seconds()
	res.WarmupS = min(cfg.Warmup, stop.Sub(st.start)).Seconds()
	res.MeasuredS = max(0, stop.Sub(st.start.Add(cfg.Warmup)).Seconds())
	col.fill(res)
	if open {
		for _, w := range workers {
			res.Sent += w.sent
			res.Late += w.late
		}
		dueBy := stop
		if ns := cancelledAt.Load(); ns != 0 && time.Unix(0, ns).Before(stop) {
			dueBy = time.Unix(0, ns)
		}
		res.Scheduled = st.due(dueBy)
		res.Dropped = max(0, res.Scheduled-res.Sent)
		res.Scheduled = res.Sent + res.Dropped
	}
	for _, w := range workers {
		w.client.CloseIdleConnections()
	}
	res.finalize()
	log.Info("run done", "requests", res.Requests, "errors", res.Errors, "elapsed_s", res.ElapsedS,
		"interrupted", res.Interrupted, "late", res.Late, "dropped", res.Dropped)
	return res, nil
}

func newClient(cfg *Config, t *Template) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:         t.Addr,
		IsTLS:        t.Scheme == "https",
		Name:         "brainy-loadtest",
		MaxConns:     1, // one connection per worker, like wrk
		ReadTimeout:  cfg.Timeout,
		WriteTimeout: cfg.Timeout,
		// A retried request hides an error and skews latency: never retry.
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		DisablePathNormalizing:    true,
		NoDefaultUserAgentHeader:  false,
	}
}

// due returns how many open-model requests were due before stop.
func (st *runState) due(stop time.Time) int64 {
	end := stop
	if !st.deadline.IsZero() && st.deadline.Before(end) {
		end = st.deadline
	}
	n := int64(math.Ceil(float64(end.Sub(st.start)) / st.interval))
	if st.cfg.Requests > 0 && n > st.cfg.Requests {
		n = st.cfg.Requests
	}
	return max(n, 0)
}

// runClosed sends requests back to back until the run is over.
func (w *worker) runClosed(ctx context.Context, st *runState) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	limit := st.cfg.Requests
	hasDeadline := !st.deadline.IsZero()
	for ctx.Err() == nil {
		if limit > 0 && st.next.Add(1) > limit {
			return
		}
		req, op := w.gen.next()
		sent := time.Now()
		if hasDeadline && !sent.Before(st.deadline) {
			return
		}
		err := w.client.Do(req, resp)
		lat := time.Since(sent)
		w.shard.record(op, resp.StatusCode(), err, lat, lat)
	}
}

// runOpen takes the next due request slot, waits for its intended send time,
// sends it and records latency from the intended time.
func (w *worker) runOpen(ctx context.Context, st *runState) {
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseResponse(resp)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	limit := st.cfg.Requests
	hasDeadline := !st.deadline.IsZero()
	lateAfter := st.cfg.LateAfter
	for {
		i := st.next.Add(1) - 1
		if limit > 0 && i >= limit {
			return
		}
		intended := st.start.Add(time.Duration(float64(i) * st.interval))
		if hasDeadline && !intended.Before(st.deadline) {
			return
		}
		now := time.Now()
		if hasDeadline && !now.Before(st.deadline) {
			return // due, but the run is over: counted as dropped
		}
		if wait := intended.Sub(now); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return
			}
		} else if ctx.Err() != nil {
			return
		}
		req, op := w.gen.next()
		sent := time.Now()
		if sent.Sub(intended) > lateAfter {
			w.late++
			w.lateA.Add(1)
		}
		w.sent++
		err := w.client.Do(req, resp)
		done := time.Now()
		w.shard.record(op, resp.StatusCode(), err, done.Sub(intended), done.Sub(sent))
	}
}

// preload PUTs every key once with all workers, unmeasured.
func preload(ctx context.Context, cfg *Config, workers []*worker) *PreloadResult {
	start := time.Now()
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			for ctx.Err() == nil {
				k := next.Add(1) - 1
				if k >= int64(cfg.Keys) {
					return
				}
				req := w.gen.preloadRequest(uint64(k))
				if err := w.client.Do(req, resp); err != nil || resp.StatusCode() >= 400 {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return &PreloadResult{Keys: min(next.Load(), int64(cfg.Keys)), Errors: errs.Load(), ElapsedS: time.Since(start).Seconds()}
}

// collector swaps the shards' intervals out once a second, builds the time
// series and the totals, and reports progress. It runs on one goroutine.
type collector struct {
	st     *runState
	shards []*shard
	second *interval // scratch: this second's merge of all shards
	total  *interval // everything after warm-up
	series []Second
	// last is when the current interval began; warm is true once warm-up is over.
	last time.Time
	warm bool
}

func newCollector(st *runState, shards []*shard, open bool, ops []Op) *collector {
	return &collector{
		st: st, shards: shards,
		second: newInterval(open, ops), total: newInterval(open, ops),
		last: st.start, warm: st.cfg.Warmup == 0,
	}
}

// minTail is the shortest final interval kept as its own series point;
// shorter tails are folded into the previous point.
const minTail = 250 * time.Millisecond

func (c *collector) loop(done <-chan struct{}) {
	warmEnd := c.st.start.Add(c.st.cfg.Warmup)
	nextTick := warmEnd
	if c.warm {
		nextTick = warmEnd.Add(time.Second)
	}
	timer := time.NewTimer(time.Until(nextTick))
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			now := time.Now()
			c.tick(now, false)
			nextTick = nextTick.Add(time.Second)
			for !nextTick.After(now) { // fell behind (suspended): skip ahead
				nextTick = nextTick.Add(time.Second)
			}
			timer.Reset(time.Until(nextTick))
		case <-done:
			c.tick(time.Now(), true)
			return
		}
	}
}

// tick collects the interval that ends at now.
func (c *collector) tick(now time.Time, final bool) {
	sec := c.second
	sec.reset()
	for _, s := range c.shards {
		iv := s.swap()
		sec.add(iv)
		iv.reset()
	}
	dur := now.Sub(c.last)
	c.last = now
	wasWarm := c.warm
	warmEnd := c.st.start.Add(c.st.cfg.Warmup)
	if !wasWarm {
		// The warm-up interval is discarded; measuring starts now.
		c.warm = !now.Before(warmEnd)
	} else {
		c.total.add(sec)
		point := Second{
			T:        now.Add(-dur).Sub(warmEnd).Seconds(),
			DurS:     dur.Seconds(),
			Requests: sec.requests,
			Errors:   sec.errors,
			Latency:  histFrom(sec.lat),
		}
		if final && dur < minTail && len(c.series) > 0 {
			prev := &c.series[len(c.series)-1]
			prev.DurS += point.DurS
			prev.Requests += point.Requests
			prev.Errors += point.Errors
			prev.Latency = mergeHists(prev.Latency, point.Latency)
		} else if !final || point.Requests > 0 || point.Errors > 0 || len(c.series) == 0 {
			c.series = append(c.series, point)
		}
	}
	if c.st.cfg.Progress != nil && !final {
		p := Progress{
			Elapsed:   now.Sub(c.st.start),
			Remaining: -1,
			Warmup:    !wasWarm,
			Requests:  c.total.requests,
			Errors:    c.total.errors,
			Late:      c.st.late.Load(),
		}
		if !c.st.deadline.IsZero() {
			p.Remaining = max(0, c.st.deadline.Sub(now))
		}
		if dur > 0 {
			p.Rate = float64(sec.requests) / dur.Seconds()
		}
		if sec.requests > 0 {
			p.P99 = time.Duration(sec.lat.ValueAtQuantile(99)) * time.Microsecond
		}
		c.st.cfg.Progress(p)
	}
}

// fill copies the totals and series into r.
func (c *collector) fill(r *Result) {
	t := c.total
	r.Requests, r.Errors = t.requests, t.errors
	r.Status = map[int]int64{}
	for code, n := range t.status {
		if n > 0 {
			r.Status[code] = n
		}
	}
	r.TransportErrors = map[string]int64{}
	for k, n := range t.transport {
		r.TransportErrors[k] = n
	}
	r.Latency = histFrom(t.lat)
	if t.svc != nil {
		h := histFrom(t.svc)
		r.Service = &h
	}
	for op, o := range t.ops {
		if o == nil {
			continue
		}
		if r.Ops == nil {
			r.Ops = map[string]*OpResult{}
		}
		r.Ops[Op(op).String()] = &OpResult{Requests: o.requests, Errors: o.errors, Latency: histFrom(o.lat)}
	}
	r.Series = c.series
	if r.Series == nil {
		r.Series = []Second{}
	}
}

// String formats p as a one-line progress report.
func (p Progress) String() string {
	left := "∞"
	if p.Remaining >= 0 {
		left = p.Remaining.Round(time.Second).String()
	}
	phase := ""
	if p.Warmup {
		phase = " (warm-up)"
	}
	return fmt.Sprintf("%6s elapsed, %6s left%s | %9.0f req/s | p99 %8s | requests %d | errors %d | late %d",
		p.Elapsed.Round(time.Second), left, phase, p.Rate, fmtUS(p.P99.Microseconds()), p.Requests, p.Errors, p.Late)
}
