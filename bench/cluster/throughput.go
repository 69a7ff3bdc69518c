package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/soullabs/brainy/bench/internal/benchproc"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	store      string
	target     string
	rps        float64
	p50, p99   time.Duration
	non2xx     int
	sockErrors string
	busyCores  float64 // machine-wide, during the run
	// serverCores is the CPU used by the store's processes during the
	// run, in cores: what the store got of a machine shared with the load
	// generator, the kernel and anything else running.
	serverCores float64
	// otherCores is what the machine used beyond the store and wrk:
	// the kernel's networking and journaling, and any other process.
	otherCores float64
}

// parseWrk reads wrk --latency output.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, have50, have99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk: bad Requests/sec line %q", line)
			}
			r.rps, haveRPS = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, err
			}
			if f[0] == "50%" {
				r.p50, have50 = d, true
			} else {
				r.p99, have99 = d, true
			}
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(f) == 5:
			r.non2xx, _ = strconv.Atoi(f[4])
		case strings.HasPrefix(line, "Socket errors:"):
			r.sockErrors = line
		}
	}
	if !haveRPS || !have50 || !have99 {
		return r, fmt.Errorf("wrk: no Requests/sec or latency distribution in its output")
	}
	return r, nil
}

// parseWrkDuration reads wrk's "512.00us", "2.10ms", "1.02s", "1.50m".
func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				break
			}
			return time.Duration(f * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("wrk: bad duration %q", s)
}

// runWrk runs wrk with kv.lua in mode against url, an unreported warm-up
// first; the output is kept in the work directory's results.
func (b *bench) runWrk(ctx context.Context, store, mode, url string, servers []*benchproc.Proc) (wrkResult, error) {
	c := b.cfg
	args := func(d time.Duration) []string {
		return []string{"-t" + strconv.Itoa(c.Threads), "-c" + strconv.Itoa(c.Connections), "-d" + fmt.Sprintf("%ds", int(d.Seconds())),
			"--timeout", "10s", "--latency", "-s", c.WrkScript, url, "--", mode, strconv.Itoa(c.Keys), strconv.Itoa(c.ValueSize)}
	}
	b.waitQuiet(ctx, 60*time.Second)
	if c.Warmup >= time.Second {
		wctx, cancel := context.WithTimeout(ctx, c.Warmup+time.Minute)
		_ = exec.CommandContext(wctx, c.Wrk, args(c.Warmup)...).Run()
		cancel()
	}
	a := args(c.Duration)
	b.log.Info("wrk", "store", store, "cmd", c.Wrk+" "+strings.Join(a, " "))
	rctx, cancel := context.WithTimeout(ctx, c.Duration+time.Minute)
	defer cancel()
	busy0, server0 := busyTicks(), procTicks(servers)
	t0 := time.Now()
	cmd := exec.CommandContext(rctx, c.Wrk, a...)
	out, err := cmd.CombinedOutput()
	secs := time.Since(t0).Seconds()
	busy := float64(busyTicks()-busy0) / clkTck / secs
	server := float64(procTicks(servers)-server0) / clkTck / secs
	var client float64
	if cmd.ProcessState != nil {
		client = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds() / secs
	}
	_ = os.WriteFile(filepath.Join(c.WorkDir, "wrk-"+store+".txt"), out, 0o644)
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk against %s: %v: %s", store, err, out)
	}
	r, err := parseWrk(string(out))
	if err != nil {
		return r, fmt.Errorf("%s: %w:\n%s", store, err, out)
	}
	r.store, r.target, r.busyCores, r.serverCores = store, url, busy, server
	r.otherCores = max(busy-server-client, 0)
	b.log.Info("wrk result", "store", store, "rps", fmt.Sprintf("%.0f", r.rps), "p50_ms", ms(r.p50), "p99_ms", ms(r.p99),
		"non2xx", r.non2xx, "socket_errors", r.sockErrors, "busy_cores", fmt.Sprintf("%.2f", busy),
		"server_cores", fmt.Sprintf("%.2f", server), "other_cores", fmt.Sprintf("%.2f", r.otherCores))
	if r.non2xx > 0 || r.sockErrors != "" {
		b.res.problems = append(b.res.problems, fmt.Sprintf("%s: %d non-2xx answers, %s", store, r.non2xx, r.sockErrors))
	}
	return r, nil
}

// waitQuiet waits, at most limit, until the machine has been nearly idle
// for a second apart from the processes this program started (idle
// servers still tick: raft heartbeats, gossip), so that a measurement
// does not share the CPUs with unrelated work; it goes on with a warning
// otherwise.
func (b *bench) waitQuiet(ctx context.Context, limit time.Duration) {
	start := time.Now()
	for ctx.Err() == nil {
		ours := b.procs.Running()
		m0, o0 := busyTicks(), procTicks(ours)
		time.Sleep(time.Second)
		other := float64(busyTicks()-m0-(procTicks(ours)-o0)) / clkTck
		if other <= 0.25 {
			return
		}
		if time.Since(start) >= limit {
			b.log.Warn("machine still busy; measuring anyway", "other_cores", fmt.Sprintf("%.2f", other), "waited", limit)
			b.res.busyWaits++
			return
		}
	}
}

// clkTck is the kernel's USER_HZ, 100 on every Linux this runs on.
const clkTck = 100

// busyTicks is the machine's busy CPU time since boot, in clock ticks
// (user, nice, system, irq, softirq).
func busyTicks() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var t int64
	for _, i := range []int{1, 2, 3, 6, 7} {
		if i < len(f) {
			v, _ := strconv.ParseInt(f[i], 10, 64)
			t += v
		}
	}
	return t
}

// procTicks is the user+system CPU time used so far by the running
// processes of ps, in clock ticks.
func procTicks(ps []*benchproc.Proc) int64 {
	var t int64
	for _, p := range ps {
		if !p.Running() {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
		if err != nil {
			continue
		}
		// Fields after "(comm) ", which may hold spaces: state is the
		// first, utime and stime the 12th and 13th.
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			t += u + s
		}
	}
	return t
}

// etcdCluster is three etcd members on 127.0.0.x, peers on :2380 and
// clients on :2379.
type etcdCluster struct {
	b       *bench
	dir     string
	ips     []string
	members []*benchproc.Proc
}

func (b *bench) newEtcdCluster() *etcdCluster {
	e := &etcdCluster{b: b, dir: filepath.Join(b.cfg.WorkDir, "etcd")}
	var initial []string
	for i := range 3 {
		ip := fmt.Sprintf("127.0.0.%d", b.cfg.FirstIP+10+i)
		e.ips = append(e.ips, ip)
		initial = append(initial, fmt.Sprintf("e%d=http://%s:2380", i+1, ip))
	}
	for i, ip := range e.ips {
		name := fmt.Sprintf("e%d", i+1)
		e.members = append(e.members, &benchproc.Proc{Name: "etcd/" + name, Path: b.cfg.Etcd, Log: filepath.Join(e.dir, name+".log"),
			Args: []string{"--name", name, "--data-dir", filepath.Join(e.dir, name),
				"--listen-client-urls", "http://" + ip + ":2379", "--advertise-client-urls", "http://" + ip + ":2379",
				"--listen-peer-urls", "http://" + ip + ":2380", "--initial-advertise-peer-urls", "http://" + ip + ":2380",
				"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
				"--initial-cluster-token", "brainy-bench-cluster",
				"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"}})
	}
	return e
}

// start starts the three members and waits for a leader.
func (e *etcdCluster) start(ctx context.Context) error {
	if err := mkdirs(e.dir); err != nil {
		return err
	}
	for i, p := range e.members {
		if err := checkFree(e.ips[i], 2379, 2380); err != nil {
			return err
		}
		e.b.log.Info("starting etcd", "member", p.Name, "cmd", p.Path+" "+strings.Join(p.Args, " "))
		if err := e.b.procs.Start(p); err != nil {
			return err
		}
	}
	return api.WaitFor(ctx, 60*time.Second, func() (bool, string) {
		for i, p := range e.members {
			if err := p.ExitErr(); err != nil {
				return false, err.Error()
			}
			code, body, err := api.Do(ctx, "GET", "http://"+e.ips[i]+":2379/health", nil, time.Second)
			if err != nil || code != 200 || !strings.Contains(string(body), `"true"`) {
				return false, fmt.Sprintf("%s: /health %d %s %v", p.Name, code, body, err)
			}
		}
		_, err := e.leader(ctx)
		return err == nil, fmt.Sprint(err)
	})
}

// leader returns the index of the member that leads.
func (e *etcdCluster) leader(ctx context.Context) (int, error) {
	for i, ip := range e.ips {
		code, body, err := api.Do(ctx, "POST", "http://"+ip+":2379/v3/maintenance/status", []byte("{}"), time.Second)
		if err != nil || code != 200 {
			return 0, fmt.Errorf("etcd status from %s: %d %v", ip, code, err)
		}
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		if err := json.Unmarshal(body, &st); err != nil {
			return 0, fmt.Errorf("etcd status from %s: %v", ip, err)
		}
		if st.Leader != "" && st.Leader != "0" && st.Leader == st.Header.MemberID {
			return i, nil
		}
	}
	return 0, fmt.Errorf("etcd: no member reports itself leader")
}

func (e *etcdCluster) stop() {
	for _, p := range e.members {
		p.Stop(15 * time.Second)
	}
}

// throughputEtcd measures the etcd cluster through its leader.
func (b *bench) throughputEtcd(ctx context.Context) error {
	e := b.newEtcdCluster()
	defer e.stop()
	if err := e.start(ctx); err != nil {
		return fmt.Errorf("etcd cluster: %w", err)
	}
	l, err := e.leader(ctx)
	if err != nil {
		return err
	}
	r, err := b.runWrk(ctx, "etcd", "etcd-put", "http://"+e.ips[l]+":2379", e.members)
	if err != nil {
		return err
	}
	r.target += " (leader " + e.members[l].Name + ")"
	b.res.etcd = &r
	return nil
}
