package daemon

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// HostSecretName is the file, in the user's configuration directory
// (os.UserConfigDir()/brainy: $XDG_CONFIG_HOME/brainy or ~/.config/brainy
// on Linux), holding the cluster secret shared by the Brainy processes one
// user runs on one host over loopback.
const HostSecretName = "host-cluster-secret"

// HostSecret returns this user's per-host cluster secret, creating it on
// first use: 32 random bytes, base64, in a file of mode 0600 in a
// directory of mode 0700. Nodes and edges on loopback with no secret and
// no certificates of their own derive their cluster CA from it, so that a
// second node or an edge on this host joins with nothing to copy, while
// no process of another user — and no one who read this code — can.
//
// A file readable by group or others is refused: anyone who can read it
// can join the cluster.
func HostSecret() (secret []byte, path string, err error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return nil, "", fmt.Errorf("the per-host cluster secret needs a configuration directory ($XDG_CONFIG_HOME or $HOME): %w", err)
	}
	dir = filepath.Join(dir, "brainy")
	path = filepath.Join(dir, HostSecretName)
	if secret, err = readHostSecret(path); !errors.Is(err, fs.ErrNotExist) {
		return secret, path, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, path, fmt.Errorf("per-host cluster secret: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, path, err
	}
	// Written aside, then linked into place: a process starting at the same
	// moment either reads a complete file or makes the link fail and reads
	// the winner's.
	tmp, err := os.CreateTemp(dir, ".secret-*")
	if err != nil {
		return nil, path, fmt.Errorf("per-host cluster secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n")
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		return nil, path, fmt.Errorf("per-host cluster secret: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, path, fmt.Errorf("per-host cluster secret: %w", err)
	}
	secret, err = readHostSecret(path)
	return secret, path, err
}

func readHostSecret(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %v): anyone who reads it can join the cluster; chmod 600 it", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	secret, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(secret) < 32 {
		return nil, fmt.Errorf("%s does not hold a secret of 32 base64 bytes: remove it and start again", path)
	}
	return secret, nil
}
