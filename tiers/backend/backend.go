// Package backend turns a storage setting — the --storage flag, the
// BRAINY_STORAGE variable, brainycloud.WithStorage, or the tiered form
// --storage-hot/--storage-warm/--storage-cold — into an open tiers.Store.
//
// Settings:
//
//	memory                   RAM only; nothing survives a restart
//	./dir, /abs/dir, dir     local disk (pebble) in that directory
//	file:///abs/dir          the same, as a URL
//	s3://bucket/prefix       any S3-compatible store (AWS, MinIO, Ceph, versitygw);
//	                         credentials from the AWS chain, endpoint from
//	                         AWS_ENDPOINT_URL or ?endpoint=
//	r2://bucket/prefix       Cloudflare R2 through its S3 endpoint (?account= or
//	                         CLOUDFLARE_ACCOUNT_ID, or ?endpoint= to override)
//	gs://bucket/prefix       Google Cloud Storage
//	azure://container/prefix Azure Blob (AZURE_STORAGE_CONNECTION_STRING, or
//	                         ?account= or AZURE_STORAGE_ACCOUNT with
//	                         AZURE_STORAGE_KEY, or without a key Entra ID tokens)
//	cloud://bucket/prefix    whichever of s3, gs, azure the environment holds
//	                         credentials for, else the provider detected
//	                         (never probed over the network)
//
// Any setting may contain {{nodeId}}, replaced by the node's id (Expand).
//
// Credentials never come from the URL. Where the environment names none,
// each store uses its provider's default chain; the chain may use the
// machine's own identity (an EC2 instance role, a GCE service account, an
// Azure managed identity, all behind a link-local metadata address) only
// where internal/cloudenv detects that provider from local evidence (DMI
// strings, workload identity variables and token files), and the log says
// which provider was detected and why. ?imds=, ?metadata_server= and
// ?managed_identity= override the detection.
//
// An object store holds a node's data as a segment log (tiers/segment)
// under its own prefix node-<id>/ of the URL's prefix, claimed with a
// create-if-absent write (tiers/claim), so that nodes can share a bucket
// and never write into each other's prefix.
//
// A tiered setting stacks a local hot directory over an object-store warm
// tier and an optional cold one (tiers/tiered): idle items move down, and
// move back up when read.
package backend

import (
	"context"
	"fmt"
	"github.com/soullabs/brainy/internal/diskfree"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/soullabs/brainy/internal/cloudenv"
	"github.com/soullabs/brainy/internal/nodestats"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/azure"
	"github.com/soullabs/brainy/tiers/buffered"
	"github.com/soullabs/brainy/tiers/claim"
	"github.com/soullabs/brainy/tiers/disk"
	"github.com/soullabs/brainy/tiers/gcs"
	"github.com/soullabs/brainy/tiers/memory"
	"github.com/soullabs/brainy/tiers/objstore"
	"github.com/soullabs/brainy/tiers/s3"
	"github.com/soullabs/brainy/tiers/segment"
	"github.com/soullabs/brainy/tiers/tiered"
)

// Spec is a parsed storage setting.
type Spec struct {
	// Kind is "memory", "disk", "object" or "tiered".
	Kind string
	// Path is the directory of a disk store, made absolute.
	Path string
	// URL is the storage URL of an object store, with r2:// and cloud://
	// already resolved to s3://, gs:// or azure://.
	URL string
	// Hot, Warm and Cold are the tiers of a tiered spec (Cold may be nil).
	Hot, Warm, Cold *Spec
	// Chosen says why a cloud:// setting resolved to its store ("AWS_PROFILE
	// is set", "provider aws detected from /sys/class/dmi/id/sys_vendor=Amazon
	// EC2"), for the logs; "" for other settings.
	Chosen string
}

// String renders the spec as a storage setting.
func (s Spec) String() string {
	switch s.Kind {
	case "memory":
		return "memory"
	case "object":
		return s.URL
	case "tiered":
		out := "hot=" + s.Hot.String() + " warm=" + s.Warm.String()
		if s.Cold != nil {
			out += " cold=" + s.Cold.String()
		}
		return out
	}
	return s.Path
}

// LocalDir is the directory on a local disk the data lives in: the
// directory of a disk spec, the hot tier's of a tiered one; "" for memory
// and object stores.
func (s Spec) LocalDir() string {
	switch s.Kind {
	case "disk":
		return s.Path
	case "tiered":
		return s.Hot.LocalDir()
	}
	return ""
}

// Location is where the data lives, for metrics.
func (s Spec) Location() string { return s.String() }

const nodeIDTemplate = "{{nodeId}}"

// Parse parses a storage setting. A {{nodeId}} in it is kept for Expand.
func Parse(setting string) (Spec, error) {
	s := strings.TrimSpace(setting)
	if s == "" {
		return Spec{}, fmt.Errorf("backend: empty storage setting; use \"memory\", a directory or an object-store URL")
	}
	// Parse with the template replaced by a placeholder that is valid
	// wherever an id may go, then put the template back.
	probe := strings.ReplaceAll(s, nodeIDTemplate, templatePlaceholder)
	if i := strings.Index(probe, "{{"); i >= 0 || strings.Contains(probe, "}}") {
		return Spec{}, fmt.Errorf("backend: storage %q: unknown template; the only one is {{nodeId}}", setting)
	}
	spec, err := parse(probe, setting)
	if err != nil {
		return Spec{}, err
	}
	spec.Path = strings.ReplaceAll(spec.Path, templatePlaceholder, nodeIDTemplate)
	spec.URL = strings.ReplaceAll(spec.URL, templatePlaceholder, nodeIDTemplate)
	return spec, nil
}

// templatePlaceholder stands for {{nodeId}} while a setting is parsed.
const templatePlaceholder = "brainy0node0id0placeholder"

func parse(s, setting string) (Spec, error) {
	switch {
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
		raw, why, err := resolveScheme(s)
		if err != nil {
			return Spec{}, fmt.Errorf("backend: storage %q: %v", setting, err)
		}
		if _, err := objstore.ParseURL(raw); err != nil {
			return Spec{}, fmt.Errorf("backend: storage %q: %v", setting, err)
		}
		return Spec{Kind: "object", URL: raw, Chosen: why}, nil
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return Spec{}, fmt.Errorf("backend: storage %q: %w", setting, err)
	}
	return Spec{Kind: "disk", Path: abs}, nil
}

// resolveScheme turns r2:// and cloud:// into the URL of the store they
// name, and refuses unknown schemes. For cloud:// it also says why it chose
// that store.
func resolveScheme(s string) (raw, why string, err error) {
	scheme, rest, _ := strings.Cut(s, "://")
	switch scheme {
	case "s3", "gs", "azure":
		return s, "", nil
	case "r2":
		// R2 is S3 at https://<account>.r2.cloudflarestorage.com, region "auto".
		// ?endpoint= overrides the endpoint as for s3:// (a local
		// S3-compatible server in tests); then no account is needed.
		loc, err := objstore.ParseURL("s3://" + rest)
		if err != nil {
			return "", "", err
		}
		account := loc.Params["account"]
		delete(loc.Params, "account")
		if account == "" {
			account = getenv("CLOUDFLARE_ACCOUNT_ID")
		}
		if _, ok := loc.Params["endpoint"]; !ok {
			if account == "" && !strings.Contains(rest, nodeIDTemplate) {
				return "", "", fmt.Errorf("r2:// needs the Cloudflare account id: ?account=ID or CLOUDFLARE_ACCOUNT_ID (or ?endpoint=URL)")
			}
			loc.Params["endpoint"] = "https://" + account + ".r2.cloudflarestorage.com"
		}
		if _, ok := loc.Params["region"]; !ok {
			loc.Params["region"] = "auto"
		}
		return loc.String(), "", nil
	case "cloud":
		scheme, why, err := resolveCloud()
		if err != nil {
			return "", "", err
		}
		return scheme + "://" + rest, why, nil
	}
	return "", "", fmt.Errorf("unknown scheme %q; use \"memory\", a directory, file:///dir, s3://, r2://, gs://, azure:// or cloud://", scheme)
}

// ParseTiered parses the tiered form: a local hot directory, an object
// store as warm tier, and optionally an object store as cold tier.
func ParseTiered(hot, warm, cold string) (Spec, error) {
	h, err := Parse(hot)
	if err != nil {
		return Spec{}, fmt.Errorf("storage-hot: %w", err)
	}
	if h.Kind != "disk" {
		return Spec{}, fmt.Errorf("backend: storage-hot %q must be a local directory", hot)
	}
	if strings.TrimSpace(warm) == "" {
		return Spec{}, fmt.Errorf("backend: storage-hot needs storage-warm, the object store idle items move to")
	}
	w, err := Parse(warm)
	if err != nil {
		return Spec{}, fmt.Errorf("storage-warm: %w", err)
	}
	if w.Kind != "object" {
		return Spec{}, fmt.Errorf("backend: storage-warm %q must be an object store (s3://, gs://, azure://, ...)", warm)
	}
	spec := Spec{Kind: "tiered", Hot: &h, Warm: &w}
	if strings.TrimSpace(cold) != "" {
		c, err := Parse(cold)
		if err != nil {
			return Spec{}, fmt.Errorf("storage-cold: %w", err)
		}
		if c.Kind != "object" {
			return Spec{}, fmt.Errorf("backend: storage-cold %q must be an object store (s3://, gs://, azure://, ...)", cold)
		}
		spec.Cold = &c
	}
	return spec, nil
}

// HasTemplate reports whether the spec uses {{nodeId}}.
func (s Spec) HasTemplate() bool { return strings.Contains(s.flat(), nodeIDTemplate) }

func (s Spec) flat() string {
	out := s.Path + s.URL
	for _, t := range []*Spec{s.Hot, s.Warm, s.Cold} {
		if t != nil {
			out += t.flat()
		}
	}
	return out
}

// Expand returns the spec with {{nodeId}} replaced by nodeID.
func (s Spec) Expand(nodeID string) Spec {
	s.Path = strings.ReplaceAll(s.Path, nodeIDTemplate, nodeID)
	s.URL = strings.ReplaceAll(s.URL, nodeIDTemplate, nodeID)
	for _, t := range []**Spec{&s.Hot, &s.Warm, &s.Cold} {
		if *t != nil {
			e := (*t).Expand(nodeID)
			*t = &e
		}
	}
	return s
}

// Options tune Open. The zero value works.
type Options struct {
	// NodeID is the prefix an object store claims in its bucket
	// (node-<NodeID>/); empty takes the lowest free one (see tiers/claim).
	NodeID string
	// Demotable says which keys a tiered store may move out of the hot
	// tier (the node's metadata must stay). Default: every key.
	Demotable func(key []byte) bool
	// Tiering are the thresholds of a tiered store; zero fields take
	// tiered's defaults.
	Tiering Tiering
	// Logger receives the stores' events. Nil discards them.
	Logger *slog.Logger
}

// Tiering are the thresholds of a tiered store (see tiered.Config).
type Tiering struct {
	DemoteAfter, ColdAfter, Interval time.Duration
	HotMaxBytes, HotMinFreeBytes     int64
}

// Store is an open store with what it is made of, for metrics.
type Store struct {
	tiers.Store
	// Tiered is set for a tiered spec.
	Tiered *tiered.Store
	// Segments are the segment logs of the spec's object stores.
	Segments []*segment.Store
	// Prefix is the claimed prefix of an object store (e.g. "node-1/").
	Prefix string
	// LocalDir is the directory of the node's local data (a disk store's,
	// or a tiered store's hot tier), "" when it has none.
	LocalDir string

	closers []func() error
}

// Close closes the store and releases what Open claimed.
func (s *Store) Close() error {
	err := s.Store.Close()
	for i := len(s.closers) - 1; i >= 0; i-- {
		if cerr := s.closers[i](); err == nil {
			err = cerr
		}
	}
	return err
}

// Open opens the store a spec names. A spec with {{nodeId}} must be
// expanded first.
func Open(ctx context.Context, spec Spec, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if spec.HasTemplate() {
		return nil, fmt.Errorf("backend: storage %s: {{nodeId}} not expanded", spec)
	}
	out := &Store{}
	switch spec.Kind {
	case "memory":
		out.Store = memory.New()
	case "disk":
		st, err := disk.Open(disk.Config{Dir: spec.Path, Logger: opts.Logger})
		if err != nil {
			return nil, err
		}
		out.Store, out.LocalDir = st, spec.Path
	case "object":
		seg, err := out.openObject(ctx, spec, &opts)
		if err != nil {
			out.closeAll()
			return nil, err
		}
		// Unsynced writes (a raft node's applied state) ride along with
		// the next synced one instead of costing an object write each.
		out.Store = buffered.New(seg, 0)
	case "tiered":
		hot, err := disk.Open(disk.Config{Dir: spec.Hot.Path, Logger: opts.Logger})
		if err != nil {
			return nil, err
		}
		out.LocalDir = spec.Hot.Path
		warm, err := out.openObject(ctx, *spec.Warm, &opts)
		if err != nil {
			hot.Close()
			out.closeAll()
			return nil, fmt.Errorf("warm tier: %w", err)
		}
		cfg := tiered.Config{Hot: hot, Warm: warm, HotDir: spec.Hot.Path, Demotable: opts.Demotable,
			DemoteAfter: opts.Tiering.DemoteAfter, ColdAfter: opts.Tiering.ColdAfter, Interval: opts.Tiering.Interval,
			HotMaxBytes: opts.Tiering.HotMaxBytes, HotMinFreeBytes: opts.Tiering.HotMinFreeBytes, Logger: opts.Logger}
		if spec.Cold != nil {
			cold, err := out.openObject(ctx, *spec.Cold, &opts)
			if err != nil {
				hot.Close()
				warm.Close()
				out.closeAll()
				return nil, fmt.Errorf("cold tier: %w", err)
			}
			cfg.Cold = cold
		}
		ts, err := tiered.Open(cfg)
		if err != nil {
			hot.Close()
			for _, s := range out.Segments {
				s.Close()
			}
			out.closeAll()
			return nil, err
		}
		out.Store, out.Tiered = ts, ts
	default:
		return nil, fmt.Errorf("backend: unknown storage kind %q", spec.Kind)
	}
	return out, nil
}

func (s *Store) closeAll() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		_ = s.closers[i]()
	}
	s.closers = nil
}

// openObject opens the object store of spec, claims this node's prefix in
// it, and opens a segment log there. The first claim decides the node id
// of the others (a tiered node holds the same slot in warm and cold).
func (s *Store) openObject(ctx context.Context, spec Spec, opts *Options) (*segment.Store, error) {
	if spec.Chosen != "" {
		opts.Logger.Info("storage: cloud:// resolved to "+spec.URL+": "+spec.Chosen, "component", "storage")
	}
	objs, err := OpenObjects(ctx, spec.URL, opts.Logger)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, objs.Close)
	c, err := claim.Acquire(ctx, objs, claim.Config{NodeID: opts.NodeID, LeaseConfig: claim.LeaseConfig{Logger: opts.Logger}})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() error {
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.Release(rctx)
	})
	go func() {
		select {
		case <-c.Lost():
			opts.Logger.Error("lost the claim on this node's prefix: another node may write there; its writes will fence this one",
				"component", "storage", "prefix", c.Prefix(), "err", c.Err())
		case <-ctx.Done():
		}
	}()
	opts.NodeID = c.NodeID()
	s.Prefix = c.Prefix()
	seg, err := segment.Open(ctx, segment.Config{Objects: objstore.WithPrefix(objs, c.Prefix()),
		Location: strings.TrimSuffix(spec.URL, "/") + "/" + c.Prefix(), Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	s.Segments = append(s.Segments, seg)
	return seg, nil
}

// OpenObjects opens the object store of a storage URL (s3://, gs://,
// azure://, or r2:// and cloud://, resolved as Parse does), with
// credentials from the environment and, where the
// environment names none, the provider's default chain: the machine's
// identity (EC2 instance role, GCE service account, Azure managed
// identity) is used only where internal/cloudenv detects that provider,
// unless the URL says otherwise (?imds=, ?metadata_server=,
// ?managed_identity=). Detection reads local files and variables only.
func OpenObjects(ctx context.Context, raw string, log *slog.Logger) (objstore.Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if strings.HasPrefix(raw, "r2://") || strings.HasPrefix(raw, "cloud://") {
		resolved, why, err := resolveScheme(raw)
		if err != nil {
			return nil, fmt.Errorf("backend: storage %q: %v", raw, err)
		}
		if why != "" {
			log.Info("storage: cloud:// resolved to "+resolved+": "+why, "component", "storage")
		}
		raw = resolved
	}
	loc, err := objstore.ParseURL(raw)
	if err != nil {
		return nil, err
	}
	det := detect()
	switch loc.Scheme {
	case "s3":
		cfg, err := s3.ConfigFromURL(loc)
		if err != nil {
			return nil, err
		}
		if cfg.Endpoint == "" {
			cfg.Endpoint = getenv("AWS_ENDPOINT_URL_S3")
		}
		if cfg.Endpoint == "" {
			cfg.Endpoint = getenv("AWS_ENDPOINT_URL")
		}
		// IMDS only on an EC2 machine, and only for AWS's own endpoints.
		cfg.UseIMDS = machineIdentity(loc, "imds", cfg.UseIMDS, det.Machine == cloudenv.AWS && awsEndpoint(cfg.Endpoint), det, log)
		cfg.Logger = log
		return s3.Open(ctx, cfg)
	case "gs":
		cfg, err := gcs.ConfigFromURL(loc)
		if err != nil {
			return nil, err
		}
		// Cloud Run and App Engine have a metadata server too: any
		// evidence of Google Cloud will do.
		cfg.UseMetadataServer = machineIdentity(loc, "metadata_server", cfg.UseMetadataServer, det.Provider == cloudenv.GCP, det, log)
		cfg.Logger = log
		return gcs.Open(ctx, cfg)
	case "azure":
		cfg, err := azure.ConfigFromURL(loc)
		if err != nil {
			return nil, err
		}
		cfg.ConnectionString = getenv("AZURE_STORAGE_CONNECTION_STRING")
		if cfg.ConnectionString == "" {
			cfg.AccountKey = getenv("AZURE_STORAGE_KEY")
			if cfg.Account == "" {
				cfg.Account = getenv("AZURE_STORAGE_ACCOUNT")
			}
		}
		if cfg.ConnectionString == "" && cfg.AccountKey == "" {
			// Entra ID tokens (azidentity); App Service's managed identity
			// needs no DMI, so any evidence of Azure will do.
			cfg.ManagedIdentity = machineIdentity(loc, "managed_identity", cfg.ManagedIdentity, det.Provider == cloudenv.Azure, det, log)
		}
		cfg.Logger = log
		return azure.Open(ctx, cfg)
	}
	return nil, fmt.Errorf("backend: %s:// cannot hold a node's data", loc.Scheme)
}

// FillStats adds the tiers and object-store requests of s to st.
func (s *Store) FillStats(st *nodestats.Storage) {
	if s.LocalDir != "" {
		if free, err := diskfree.Bytes(s.LocalDir); err == nil {
			st.Available = &free
		}
	}
	if s.Tiered != nil {
		st.Tiers = s.Tiered.TierStats()
		m := s.Tiered.MoverStats()
		st.Mover = &nodestats.Mover{Running: m.Running, Passes: m.Passes, LastMoved: m.LastMoved, Moved: m.Moved, LastError: m.LastError}
	}
	if len(s.Segments) > 0 {
		var r nodestats.ObjectRequests
		for _, seg := range s.Segments {
			q := seg.Requests()
			r.Puts += q.Puts
			r.Gets += q.Gets
			r.RangeGets += q.RangeGets
			r.Deletes += q.Deletes
			r.Lists += q.Lists
		}
		st.ObjectRequests = &r
	}
}
