package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// TestImage builds the image as make image does, offline, and checks what
// it promises: not root, brainy-core as the entrypoint, the ports the
// binaries listen on, the data volume owned by the image's user, static
// binaries and no shell; every BRAINY_* variable it sets is one the
// binaries know. Where docker or podman is installed it also runs it.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries")
	}
	out := filepath.Join(t.TempDir(), "brainy.tar")
	if err := build("../..", "deploy/container/Dockerfile", out, "brainy:test", io.Discard); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("brainy:test")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User == "" || c.User == "root" || strings.HasPrefix(c.User, "0:") || c.User == "0" {
		t.Errorf("the image runs as %q: want a non-root user", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/brainy-core"}) {
		t.Errorf("entrypoint %v", c.Entrypoint)
	}
	for _, p := range []string{"7070/tcp", "7071/udp", "7946/tcp", "7946/udp", "7947/tcp", "7947/udp", "8080/tcp"} {
		if _, ok := c.ExposedPorts[p]; !ok {
			t.Errorf("port %s is not exposed: %v", p, c.ExposedPorts)
		}
	}
	if _, ok := c.Volumes["/var/lib/brainy"]; !ok {
		t.Errorf("no /var/lib/brainy volume: %v", c.Volumes)
	}
	if cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}

	// The files: read the flattened filesystem.
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	contents := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = h
		if strings.HasPrefix(h.Name, "usr/local/bin/") {
			contents[h.Name], _ = io.ReadAll(tr)
		}
	}
	for _, sh := range []string{"bin/sh", "bin/bash", "usr/bin/sh", "bin/busybox"} {
		if files[sh] != nil {
			t.Errorf("the image has a shell: %s", sh)
		}
	}
	if h := files["var/lib/brainy"]; h == nil || h.Uid != dataUID || h.Typeflag != tar.TypeDir {
		t.Errorf("/var/lib/brainy: %+v, want a directory owned by %d", h, dataUID)
	}
	if files["etc/ssl/certs/ca-certificates.crt"] == nil {
		t.Error("no CA certificates: object stores over TLS would fail")
	}
	dir := t.TempDir()
	for _, b := range binaries {
		path := "usr/local/bin/" + b
		h := files[path]
		if h == nil || h.Mode&0o111 == 0 {
			t.Fatalf("%s: %+v, want an executable", path, h)
		}
		f, err := elf.NewFile(bytes.NewReader(contents[path]))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked: a scratch image has no loader", path)
			}
		}
		// Every BRAINY_* the image sets is a flag of the binary it is for.
		exe := filepath.Join(dir, b)
		if err := os.WriteFile(exe, contents[path], 0o755); err != nil {
			t.Fatal(err)
		}
		help, _ := exec.Command(exe, "--help").CombinedOutput()
		prefix := "BRAINY_"
		if b == "brainy-edge" {
			prefix = "BRAINY_EDGE_"
		}
		for _, kv := range c.Env {
			k, _, _ := strings.Cut(kv, "=")
			isEdge := strings.HasPrefix(k, "BRAINY_EDGE_")
			if strings.HasPrefix(k, prefix) && (b == "brainy-edge") == isEdge && !bytes.Contains(help, []byte(k)) {
				t.Errorf("the image sets %s, which %s --help does not list", k, b)
			}
		}
	}

	for _, runtime := range []string{"podman", "docker"} {
		// Installed is not enough: docker needs its daemon.
		if exec.Command(runtime, "info").Run() == nil {
			t.Run(runtime, func(t *testing.T) { runImage(t, runtime, out) })
			return
		}
	}
	t.Log("no working docker or podman here: the image was checked, not run")
}

// runImage loads the image and runs brainy-core --help in it.
func runImage(t *testing.T, runtime, tarPath string) {
	if out, err := exec.Command(runtime, "load", "-i", tarPath).CombinedOutput(); err != nil {
		t.Fatalf("%s load: %v\n%s", runtime, err, out)
	}
	out, err := exec.Command(runtime, "run", "--rm", "brainy:test", "--help").CombinedOutput()
	if !bytes.Contains(out, []byte("--storage")) {
		t.Fatalf("%s run brainy:test --help: %v\n%s", runtime, err, out)
	}
}
