package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// proc is one process this program started: the command it was started
// with, so that it can be started again the same way.
type proc struct {
	name string
	path string
	args []string
	log  string // file receiving stdout and stderr

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been waited for
	err  error         // Wait's result, once done is closed
}

// registry tracks every process started, so all of them can be stopped
// by PID on the way out.
type registry struct {
	log *slog.Logger

	mu    sync.Mutex
	procs map[*proc]bool // running (started and not yet waited for)
}

func newRegistry(log *slog.Logger) *registry {
	return &registry{log: log, procs: map[*proc]bool{}}
}

// start starts p (again, if it ran before), appending to its log.
func (r *registry) start(p *proc) error {
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
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

// running reports whether p has been started and not yet exited.
func (p *proc) running() bool {
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

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *proc) stop(grace time.Duration) {
	if !p.running() {
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

// exitErr describes how p ended, for error messages.
func (p *proc) exitErr() error {
	if p.running() {
		return nil
	}
	if p.err == nil {
		return fmt.Errorf("%s exited (status 0); see %s", p.name, p.log)
	}
	return fmt.Errorf("%s exited: %v; see %s", p.name, p.err, p.log)
}

// running lists the processes started and not yet exited.
func (r *registry) running() []*proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ps []*proc
	for p := range r.procs {
		ps = append(ps, p)
	}
	return ps
}

// stopAll stops every running process, all at once (SIGTERM, SIGKILL
// after 15 s: brainy-core's shutdown waits up to 10 s for in-flight work).
func (r *registry) stopAll() {
	ps := r.running()
	if len(ps) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, p := range ps {
		r.log.Info("stopping", "process", p.name, "pid", p.cmd.Process.Pid)
		wg.Go(func() { p.stop(15 * time.Second) })
	}
	wg.Wait()
}

// errStopped is returned by waits cut short by the run's context.
var errStopped = errors.New("run stopped (time bound or signal)")
