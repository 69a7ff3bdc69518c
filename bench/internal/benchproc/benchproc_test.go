package benchproc

import (
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRegistryStopsItsProcesses: StopAll ends every process started and
// still running, and a process can be started again with its command.
func TestRegistryStopsItsProcesses(t *testing.T) {
	dir := t.TempDir()
	r := NewRegistry(slog.New(slog.DiscardHandler))
	p := &Proc{Name: "sleep", Path: "sleep", Args: []string{"60"}, Log: filepath.Join(dir, "sleep.log")}
	q := &Proc{Name: "sleep2", Path: "sleep", Args: []string{"60"}, Log: filepath.Join(dir, "sleep2.log")}
	for _, x := range []*Proc{p, q} {
		if err := r.Start(x); err != nil {
			t.Fatal(err)
		}
	}
	p.Kill()
	if p.Running() || p.ExitErr() == nil {
		t.Fatal("killed process still running")
	}
	if err := r.Start(p); err != nil {
		t.Fatal(err)
	}
	r.StopAll(15 * time.Second)
	if p.Running() || q.Running() {
		t.Fatal("StopAll left a process running")
	}
	if n := len(r.Running()); n != 0 {
		t.Fatalf("registry still holds %d processes", n)
	}
}

// TestCheckFree: a port something listens on is reported, a free one is
// not.
func TestCheckFree(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := CheckFree("127.0.0.1", port); err == nil || !strings.HasSuffix(err.Error(), " is already in use") {
		t.Fatalf("a taken port: %v", err)
	}
	ln.Close()
	if err := CheckFree("127.0.0.1", port); err != nil {
		t.Fatalf("a free port: %v", err)
	}
}
