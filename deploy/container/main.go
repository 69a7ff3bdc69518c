// Command container builds Brainy's container image without Docker and
// without a registry (make image): the static binaries and the few files
// they need in one layer on an empty base, with the run settings — user,
// environment, volume, ports, entrypoint — read from the final stage of
// the Dockerfile beside it, so that the two builds cannot drift apart. The
// image is written as a tarball `docker load` and `podman load` accept.
//
//	go run ./deploy/container -o bin/brainy-image.tar -tag brainy:dev
//
// Run it from the repository's root.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func main() {
	out := flag.String("o", "bin/brainy-image.tar", "where the image tarball goes")
	tag := flag.String("tag", "brainy:dev", "the image's name in the tarball")
	flag.Parse()
	if err := build(".", "deploy/container/Dockerfile", *out, *tag, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// binaries are what the image carries, built from ./cmd/NAME.
var binaries = []string{"brainy-core", "brainy-edge"}

// dataUID owns the data directory and runs the binaries (the Dockerfile's
// USER; 65532 is the "nonroot" of distroless images).
const dataUID = 65532

// build compiles the binaries in root (the module's directory) and writes
// the image to out.
func build(root, dockerfile, out, tag string, progress io.Writer) error {
	cfg, err := finalStage(filepath.Join(root, dockerfile))
	if err != nil {
		return err
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", tag, err)
	}
	bin, err := os.MkdirTemp("", "brainy-image")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	fmt.Fprintf(progress, "building %s (static)\n", strings.Join(binaries, ", "))
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", bin + "/"}
	for _, b := range binaries {
		args = append(args, "./cmd/"+b)
	}
	gobuild := exec.Command("go", args...)
	gobuild.Dir = root
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if o, err := gobuild.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, o)
	}
	layerTar, err := layer(bin)
	if err != nil {
		return err
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil })
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", runtime.GOARCH, cfg
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := tarball.WriteToFile(out, ref, img); err != nil {
		return err
	}
	fmt.Fprintf(progress, "wrote %s (%s, %d KiB layer)\n", out, ref, len(layerTar)>>10)
	return nil
}

// layer is the image's one layer: the binaries, the CA certificates object
// stores' TLS needs, an empty data directory owned by dataUID and /tmp.
func layer(bin string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// A fixed time keeps the layer's digest a function of its contents.
	epoch := time.Unix(0, 0)
	dir := func(path string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: epoch})
	}
	file := func(path string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path, Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"etc", "etc/ssl", "etc/ssl/certs", "usr", "usr/local", "usr/local/bin", "var", "var/lib"} {
		if err := dir(d, 0o755, 0); err != nil {
			return nil, err
		}
	}
	if err := dir("var/lib/brainy", 0o700, dataUID); err != nil {
		return nil, err
	}
	if err := dir("tmp", 0o1777, 0); err != nil {
		return nil, err
	}
	certs, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		return nil, fmt.Errorf("the CA certificates object stores' TLS needs (Debian: ca-certificates): %w", err)
	}
	if err := file("etc/ssl/certs/ca-certificates.crt", 0o644, certs); err != nil {
		return nil, err
	}
	for _, b := range binaries {
		data, err := os.ReadFile(filepath.Join(bin, b))
		if err != nil {
			return nil, err
		}
		if err := file("usr/local/bin/"+b, 0o755, data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// finalStage reads the run settings of the Dockerfile's last stage: USER,
// ENV, VOLUME, EXPOSE and ENTRYPOINT (exec form).
func finalStage(path string) (v1.Config, error) {
	var cfg v1.Config
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(word) {
		case "FROM":
			cfg = v1.Config{} // a new stage: only the last one's count
		case "USER":
			cfg.User = rest
		case "ENV":
			for _, kv := range strings.Fields(rest) {
				if !strings.Contains(kv, "=") {
					return cfg, fmt.Errorf("%s: ENV %q: want KEY=VALUE pairs", path, rest)
				}
				cfg.Env = append(cfg.Env, kv)
			}
		case "VOLUME":
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			for _, v := range strings.Fields(rest) {
				cfg.Volumes[v] = struct{}{}
			}
		case "EXPOSE":
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range strings.Fields(rest) {
				port, proto, _ := strings.Cut(p, "/")
				if _, err := strconv.ParseUint(port, 10, 16); err != nil || (proto != "tcp" && proto != "udp") {
					return cfg, fmt.Errorf("%s: EXPOSE %q: want PORT/tcp or PORT/udp", path, p)
				}
				cfg.ExposedPorts[p] = struct{}{}
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &cfg.Entrypoint); err != nil {
				return cfg, fmt.Errorf("%s: ENTRYPOINT must be the exec form (a JSON array): %w", path, err)
			}
		}
	}
	if cfg.User == "" || len(cfg.Entrypoint) == 0 {
		return cfg, errors.New(path + ": the final stage needs USER and ENTRYPOINT")
	}
	return cfg, sc.Err()
}
