// Package benchproc starts and stops the processes the benchmark drivers
// under bench/ run (brainy-core, etcd), each recorded in a Registry so that
// all of them can be stopped by PID on the way out.
package benchproc

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Proc is one process a driver started: the command it was started with,
// so that it can be started again the same way.
type Proc struct {
	Name string
	Path string
	Args []string
	Env  []string // added to this process's environment; nil: inherit it
	Log  string   // file receiving stdout and stderr (appended to)

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been waited for
	err  error         // Wait's result, once done is closed
}

// Registry tracks every process started and not yet exited.
type Registry struct {
	log *slog.Logger

	mu    sync.Mutex
	procs map[*Proc]bool
}

// NewRegistry returns an empty registry that logs what StopAll stops.
func NewRegistry(log *slog.Logger) *Registry {
	return &Registry{log: log, procs: map[*Proc]bool{}}
}

// Start starts p (again, if it ran before), appending to its log.
func (r *Registry) Start(p *Proc) error {
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	if p.Env != nil {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd, p.done, p.err = cmd, make(chan struct{}), nil
	r.mu.Lock()
	r.procs[p] = true
	r.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		f.Close()
		r.mu.Lock()
		delete(r.procs, p)
		r.mu.Unlock()
		close(p.done)
	}()
	return nil
}

// Pid is the process's id (0 before its first start).
func (p *Proc) Pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether p has been started and not yet exited.
func (p *Proc) Running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *Proc) Stop(grace time.Duration) {
	if !p.Running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// ExitErr describes how p ended, for error messages (nil while it runs).
func (p *Proc) ExitErr() error {
	if p.Running() {
		return nil
	}
	if p.err == nil {
		return fmt.Errorf("%s exited (status 0); see %s", p.Name, p.Log)
	}
	return fmt.Errorf("%s exited: %v; see %s", p.Name, p.err, p.Log)
}

// Running lists the processes started and not yet exited.
func (r *Registry) Running() []*Proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []*Proc
	for p := range r.procs {
		ps = append(ps, p)
	}
	return ps
}

// StopAll stops every running process, all at once (SIGTERM, SIGKILL
// after grace).
func (r *Registry) StopAll(grace time.Duration) {
	var wg sync.WaitGroup
	for _, p := range r.Running() {
		r.log.Info("stopping", "process", p.Name, "pid", p.Pid())
		wg.Go(func() { p.Stop(grace) })
	}
	wg.Wait()
}

// CheckFree fails if something already listens on ip at any of the TCP
// ports, so that a leftover process is never mistaken for one a driver
// starts. The error reads "ADDR is already in use".
func CheckFree(ip string, ports ...int) error {
	for _, p := range ports {
		addr := net.JoinHostPort(ip, fmt.Sprint(p))
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return fmt.Errorf("%s is already in use", addr)
		}
	}
	return nil
}
