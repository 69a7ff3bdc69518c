package item

import "context"

// API is the six item operations, declared once for everything that
// serves or calls them: a core node, a cluster (which forwards what the
// node does not hold), a remote core reached over QUIC (package itemrpc,
// package upstream), and the HTTP API in front of any of them. Every
// method is called concurrently; errors are classified with this
// package's sentinels, whichever side of the wire produced them.
type API interface {
	Add(ctx context.Context, tenant string, it *Item) (*Item, error)
	Put(ctx context.Context, tenant string, it *Item, cond Cond) (_ *Item, created bool, _ error)
	Patch(ctx context.Context, tenant, id string, p *Patch, cond Cond) (*Item, error)
	Delete(ctx context.Context, tenant, id string, cond Cond) error
	Get(ctx context.Context, tenant, id string) (*Item, error)
	List(ctx context.Context, tenant string, opts ListOptions) (*Page, error)
}
