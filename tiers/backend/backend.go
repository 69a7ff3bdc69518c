// Package backend turns a storage setting — the --storage flag, the
// BRAINY_STORAGE variable, brainy.WithStorage — into an open tiers.Store.
//
// Accepted today:
//
//	memory                 RAM only; nothing survives a restart
//	./dir, /abs/dir, dir   local disk (pebble) in that directory
//	file:///abs/dir        the same, as a URL
//
// Object-store schemes (s3://, azure://, gs://, r2://) are recognised and
// refused with a clear error until their backends land.
package backend

import (
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/disk"
	"github.com/soullabs/brainy/tiers/memory"
	"github.com/soullabs/brainy/tiers/objstore"
)

// Spec is a parsed storage setting.
type Spec struct {
	// Kind is "memory" or "disk".
	Kind string
	// Path is the directory of a disk store, made absolute.
	Path string
}

// String renders the spec as a storage setting.
func (s Spec) String() string {
	if s.Kind == "memory" {
		return "memory"
	}
	return s.Path
}

// Parse parses a storage setting.
func Parse(setting string) (Spec, error) {
	s := strings.TrimSpace(setting)
	switch {
	case s == "":
		return Spec{}, fmt.Errorf("backend: empty storage setting; use \"memory\" or a directory")
	case s == "memory":
		return Spec{Kind: "memory"}, nil
	case strings.HasPrefix(s, "file://"):
		u, err := url.Parse(s)
		if err != nil || u.Path == "" || (u.Host != "" && u.Host != "localhost") {
			return Spec{}, fmt.Errorf("backend: storage %q: want file:///absolute/dir", setting)
		}
		return Spec{Kind: "disk", Path: filepath.Clean(u.Path)}, nil
	}
	if i := strings.Index(s, "://"); i > 0 {
		scheme := s[:i]
		switch scheme {
		case "s3", "gs", "azure":
			// The URL's shape is checked now, so a typo is named even
			// before object stores can hold a node's data.
			if _, err := objstore.ParseURL(s); err != nil {
				return Spec{}, fmt.Errorf("backend: storage %q: %v", setting, err)
			}
			fallthrough
		case "r2", "cloud":
			return Spec{}, fmt.Errorf("backend: storage %q: %s:// cannot hold a node's data yet (the object-store segment log is not built); use \"memory\" or a directory", setting, scheme)
		}
		return Spec{}, fmt.Errorf("backend: storage %q: unknown scheme %q; use \"memory\", a directory or file:///dir", setting, scheme)
	}
	if strings.ContainsAny(s, "{}") {
		return Spec{}, fmt.Errorf("backend: storage %q: templates such as {{nodeId}} are not supported yet", setting)
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return Spec{}, fmt.Errorf("backend: storage %q: %w", setting, err)
	}
	return Spec{Kind: "disk", Path: abs}, nil
}

// Open opens the store a spec names.
func Open(spec Spec, log *slog.Logger) (tiers.Store, error) {
	switch spec.Kind {
	case "memory":
		return memory.New(), nil
	case "disk":
		return disk.Open(disk.Config{Dir: spec.Path, Logger: log})
	}
	return nil, fmt.Errorf("backend: unknown storage kind %q", spec.Kind)
}
