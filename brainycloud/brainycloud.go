// Package brainycloud lets an embedded Brain keep its data in an object
// store or in tiers of local disk and object stores: every storage setting
// of brainy-core, where [brainy.WithStorage] takes only memory and
// directories.
//
//	brain, err := brainy.New(ctx, brainycloud.WithStorage("s3://bucket/prefix"))
//	brain, err := brainy.New(ctx, brainycloud.WithTiered("./hot", "s3://bucket/warm", ""))
//
// It is a package of its own because it links the AWS, Google Cloud and
// Azure SDKs; a program that does not import it does not carry them.
//
// Settings (see github.com/soullabs/brainy/tiers/backend):
//
//	memory, ./dir, /abs/dir, file:///abs/dir   as brainy.WithStorage
//	s3://bucket/prefix        any S3-compatible store; credentials from the AWS
//	                          chain, endpoint from AWS_ENDPOINT_URL or ?endpoint=
//	r2://bucket/prefix        Cloudflare R2 (?account= or CLOUDFLARE_ACCOUNT_ID,
//	                          or ?endpoint=)
//	gs://bucket/prefix        Google Cloud Storage
//	azure://container/prefix  Azure Blob (AZURE_STORAGE_CONNECTION_STRING, or
//	                          ?account= with AZURE_STORAGE_KEY, or without a key
//	                          Entra ID tokens from azidentity)
//	cloud://bucket/prefix     whichever of s3, gs, azure the environment holds
//	                          credentials for, else the cloud the machine is
//	                          detected to be on
//
// Without credentials in the environment a store uses its provider's
// default chain, including the machine's own identity (EC2 instance role,
// GCE service account, Azure managed identity) where that provider is
// detected from local evidence (DMI strings, workload identity variables
// and token files) and never otherwise; the Brain's logger says which
// provider was detected and why.
//
// A {{nodeId}} in a setting becomes the host name. On an object store the
// Brain claims the prefix node-<id>/ of the URL (the lowest free id), so
// several programs can share a bucket; Close releases the claim.
package brainycloud

import (
	"context"
	"fmt"
	"os"

	"github.com/soullabs/brainy"
	"github.com/soullabs/brainy/core"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/backend"
)

// WithStorage sets where data lives: any setting of brainy.WithStorage, or
// an object-store URL (s3://, r2://, gs://, azure://, cloud://). New opens
// the store with credentials from the environment and fails if it cannot.
// Like brainy.WithStorage and brainy.WithStore, the last of them wins.
func WithStorage(setting string) brainy.Option {
	return brainy.WithStore(func(ctx context.Context, cfg brainy.StoreConfig) (tiers.Store, error) {
		spec, err := backend.Parse(setting)
		if err != nil {
			return nil, err
		}
		return open(ctx, spec, cfg)
	})
}

// WithTiered keeps recent items in the local directory hot and moves idle
// ones to the object store warm, and on to the object store cold if it is
// not empty; a read moves an item back up. The thresholds are the defaults
// of github.com/soullabs/brainy/tiers/tiered.
func WithTiered(hot, warm, cold string) brainy.Option {
	return brainy.WithStore(func(ctx context.Context, cfg brainy.StoreConfig) (tiers.Store, error) {
		spec, err := backend.ParseTiered(hot, warm, cold)
		if err != nil {
			return nil, err
		}
		return open(ctx, spec, cfg)
	})
}

// store is an open backend store with its setting, for Metrics.
type store struct {
	*backend.Store
	location string
}

// Location is where the data lives, as the setting names it.
func (s store) Location() string { return s.location }

func open(ctx context.Context, spec backend.Spec, cfg brainy.StoreConfig) (tiers.Store, error) {
	if spec.HasTemplate() {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("brainycloud: storage %s: {{nodeId}} needs a host name: %w", spec, err)
		}
		spec = spec.Expand(host)
	}
	st, err := backend.Open(ctx, spec, backend.Options{Logger: cfg.Logger, Demotable: core.Demotable})
	if err != nil {
		return nil, err
	}
	return store{st, spec.Location()}, nil
}
