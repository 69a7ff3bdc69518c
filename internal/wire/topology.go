package wire

import (
	"encoding/binary"
	"errors"
	"net"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/soullabs/brainy/internal/codec"
)

// Routing. A core pushes its view of who leads each partition to its
// subscribers (MethodTopology), when they subscribe and whenever a leader
// changes, so that an edge sends each request straight to the node that
// can answer it instead of to any core, which would forward it: one hop
// instead of two. A view can be stale — leadership moves — and then the
// core that receives the request forwards it (one extra hop, never a
// loop: a forwarded request is never forwarded again) while the newer
// view is on its way.

// MethodTopology is the push of an encoded Topology.
const MethodTopology uint16 = 112

// Limits of a decoded Topology: far beyond any cluster's, small enough
// that a malformed or hostile push cannot make a subscriber allocate much.
const (
	MaxTopologyPartitions = 1 << 16
	MaxTopologyNodes      = 4096
	MaxTopologyReplicas   = 16
	maxTopologyAddr       = 256
)

// PartitionOf maps a tenant and id to a partition in [0, n). The mapping is
// stable forever for a given n: it decides where data lives on disk, and
// every router (cores, edges) must agree on it.
func PartitionOf(tenant, id string, n int) int {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(tenant)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(id)
	return int(d.Sum64() % uint64(n))
}

// Topology is one core's view of the cluster's routing.
type Topology struct {
	// Region is the pushing core's region, "" outside a federation: views
	// of different regions are different clusters, never merged.
	Region string
	// Partitions is the cluster's partition count (PartitionOf's n).
	Partitions int
	// Nodes are the members the view names: id and QUIC address.
	Nodes []TopologyNode
	// Leaders has one entry per partition.
	Leaders []Lead
	// Others are the federation's other regions, as the pushing core's
	// federation gossip knows them: where a subscriber that reached one
	// region finds the rest. Empty outside a federation.
	Others []RegionCores
}

// TopologyNode is a member of the cluster.
type TopologyNode struct {
	ID   string
	Addr string // QUIC host:port inside the region
	// Public is the QUIC host:port clients outside the region reach the
	// node at (--federation-quic-addr: a NAT or relay in between); empty
	// when it is Addr.
	Public string
}

// RegionCores names a region and some of its cores' QUIC addresses, as
// reached from outside the region.
type RegionCores struct {
	Region string
	Addrs  []string
}

// Limits of Topology.Others.
const (
	MaxTopologyRegions     = 64 // core.MaxRegions
	MaxTopologyRegionCores = 16
)

// Lead is who leads a partition, as of which raft term. Views from
// different cores merge by term: the higher is newer.
type Lead struct {
	Node int // index in Topology.Nodes; -1 when unknown
	Term uint64
	// Replicas are the nodes holding the partition (indexes in
	// Topology.Nodes), the leader among them, as the pushing core last
	// knew: where a stale read may go.
	Replicas []int
}

// ErrMalformedTopology is returned for a topology push that does not decode
// or breaks its limits.
var ErrMalformedTopology = errors.New("wire: malformed topology")

// topologyRegional is the format of a topology that names its region
// (after the format byte); a topology without one keeps format 1, which
// edges from before regions read. topologyFederated adds, after the
// leaders, the nodes' public addresses and the other regions' cores.
const (
	topologyRegional  = 2
	topologyFederated = 3
)

// maxTopologyRegion bounds a region name (federation.ValidName: 32).
const maxTopologyRegion = 64

// AppendTopology appends t's encoding.
func AppendTopology(dst []byte, t *Topology) []byte {
	federated := len(t.Others) > 0 || slices.ContainsFunc(t.Nodes, func(n TopologyNode) bool { return n.Public != "" })
	if t.Region != "" {
		if federated {
			dst = append(dst, topologyFederated)
		} else {
			dst = append(dst, topologyRegional)
		}
		dst = codec.AppendString(dst, t.Region)
	} else {
		dst = append(dst, format)
	}
	dst = binary.AppendUvarint(dst, uint64(t.Partitions))
	dst = binary.AppendUvarint(dst, uint64(len(t.Nodes)))
	for _, n := range t.Nodes {
		dst = codec.AppendString(dst, n.ID)
		dst = codec.AppendString(dst, n.Addr)
	}
	for _, l := range t.Leaders {
		dst = binary.AppendUvarint(dst, uint64(l.Node+1))
		dst = binary.AppendUvarint(dst, l.Term)
		dst = binary.AppendUvarint(dst, uint64(len(l.Replicas)))
		for _, r := range l.Replicas {
			dst = binary.AppendUvarint(dst, uint64(r))
		}
	}
	if t.Region != "" && federated {
		for _, n := range t.Nodes {
			dst = codec.AppendString(dst, n.Public)
		}
		dst = binary.AppendUvarint(dst, uint64(len(t.Others)))
		for _, r := range t.Others {
			dst = codec.AppendString(dst, r.Region)
			dst = binary.AppendUvarint(dst, uint64(len(r.Addrs)))
			for _, a := range r.Addrs {
				dst = codec.AppendString(dst, a)
			}
		}
	}
	return dst
}

// DecodeTopology decodes a topology push. Every leader names a node of the
// view or none, every address is a host:port, and there is one leader per
// partition.
func DecodeTopology(b []byte) (*Topology, error) {
	d := codec.Decoder{B: b, Fail: ErrMalformedTopology}
	region, federated := "", false
	switch d.Byte() {
	case format:
	case topologyFederated:
		federated = true
		fallthrough
	case topologyRegional:
		if region = d.String(); region == "" || len(region) > maxTopologyRegion {
			return nil, ErrMalformedTopology
		}
	default:
		return nil, ErrMalformedTopology
	}
	parts, nodes := d.Uvarint(), d.Uvarint()
	if d.Err != nil || parts == 0 || parts > MaxTopologyPartitions || nodes > MaxTopologyNodes || nodes > uint64(len(d.B)) {
		return nil, ErrMalformedTopology
	}
	t := &Topology{Region: region, Partitions: int(parts), Nodes: make([]TopologyNode, 0, nodes)}
	for range nodes {
		n := TopologyNode{ID: d.String(), Addr: d.String()}
		if d.Err != nil || n.ID == "" || len(n.ID) > maxTopologyAddr || len(n.Addr) > maxTopologyAddr {
			return nil, ErrMalformedTopology
		}
		if !validAddr(n.Addr) {
			return nil, ErrMalformedTopology
		}
		t.Nodes = append(t.Nodes, n)
	}
	// Each leader takes at least three bytes: a count beyond that is a lie.
	if parts > uint64(len(d.B))/3 {
		return nil, ErrMalformedTopology
	}
	t.Leaders = make([]Lead, parts)
	for i := range t.Leaders {
		node, term, nr := d.Uvarint(), d.Uvarint(), d.Uvarint()
		if node > nodes || nr > MaxTopologyReplicas {
			return nil, ErrMalformedTopology
		}
		l := Lead{Node: int(node) - 1, Term: term}
		for range nr {
			r := d.Uvarint()
			if r >= nodes {
				return nil, ErrMalformedTopology
			}
			l.Replicas = append(l.Replicas, int(r))
		}
		t.Leaders[i] = l
	}
	if federated {
		for i := range t.Nodes {
			p := d.String()
			if p != "" && !validAddr(p) {
				return nil, ErrMalformedTopology
			}
			t.Nodes[i].Public = p
		}
		n := d.Uvarint()
		if n > MaxTopologyRegions || n > uint64(len(d.B)) {
			return nil, ErrMalformedTopology
		}
		for range n {
			r := RegionCores{Region: d.String()}
			na := d.Uvarint()
			if r.Region == "" || len(r.Region) > maxTopologyRegion || r.Region == region || na > MaxTopologyRegionCores {
				return nil, ErrMalformedTopology
			}
			for range na {
				a := d.String()
				if !validAddr(a) {
					return nil, ErrMalformedTopology
				}
				r.Addrs = append(r.Addrs, a)
			}
			t.Others = append(t.Others, r)
		}
	}
	if d.Err != nil || len(d.B) != 0 {
		return nil, ErrMalformedTopology
	}
	return t, nil
}

// validAddr reports whether a is a bounded host:port.
func validAddr(a string) bool {
	if len(a) > maxTopologyAddr {
		return false
	}
	_, _, err := net.SplitHostPort(a)
	return err == nil
}
