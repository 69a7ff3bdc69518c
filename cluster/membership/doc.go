// Package membership tells every brainy-core node which other nodes are in
// its cluster and whether they are alive. It is the one package that
// imports github.com/hashicorp/memberlist (SWIM gossip and failure
// detection); everything above it sees Members, Events and Meta.
//
// # Usage
//
//	m, err := membership.Start(ctx, membership.Config{
//		Meta:     membership.Meta{ID: id, QUICAddr: quic, HTTPAddr: http, Zone: zone, Region: region, Role: "core"},
//		BindAddr: bind, // from --bind; default 127.0.0.1
//		Peers:    peers,
//		Discover: []string{"dns:brainy.internal"},
//	})
//	...
//	for ev := range m.Events() { ... }   // join, leave, update
//	m.NotifyUnreachable(id)              // from the QUIC transport, on a lost connection
//	...
//	m.Leave(5 * time.Second)             // graceful: the others see StateLeft
//	m.Shutdown()
//
// Start returns at once; joining happens in the background. Every method is
// safe for concurrent use. Events arrive in memberlist's order on one
// channel, from a queue of at most MaxQueuedEvents, so a slow reader delays
// only itself; one that falls further behind loses the oldest events
// (DroppedEvents counts them) and catches up from Members. Departed
// members are forgotten DeadRetention after they went.
//
// # Discovery
//
// Peers and the Discover sources (DNS SRV then A/AAAA, EC2 tags,
// Kubernetes headless service) are re-run every RejoinInterval while the
// node is alone and every HealInterval afterwards, which also merges the
// halves of a healed partition. Port-less results (A records, EC2,
// Kubernetes) use this node's own port: a cluster shares one gossip port.
// EC2 discovery never contacts the instance metadata service; credentials
// come from the environment alone.
//
// # LAN beacon
//
// On a non-loopback address a node also broadcasts a small beacon (cluster
// name, ID, gossip address; HMAC-tagged when there is a GossipKey) on the
// gossip port, every BeaconInterval while alone and every
// BeaconHealInterval after. The node's own Transport owns the port and
// tells beacons from gossip by a prefix byte that memberlist never sends
// (see beaconMagic); a beacon from the same cluster makes the receiver
// join the sender. Beacons are never sent on loopback.
//
// # Invariants
//
//   - A member's Meta.ID is its memberlist name; two live nodes with one ID
//     are a configuration error that memberlist reports as a conflict.
//   - Meta encodes to at most MetaMaxSize bytes; DecodeMeta accepts exactly
//     the encodings AppendEncode produces.
//   - Gossip and beacons of different ClusterNames never mix: memberlist's
//     label drops the gossip, the receiver drops the beacon.
//   - StateLeft is reported only for a member that announced a leave
//     intent before its memberlist leave message (memberlist itself does
//     not tell a leave from a death); every other departure is StateDead.
//   - StateSuspect comes only from NotifyUnreachable's failed direct ping;
//     memberlist's own suspicion is internal to it and not observable.
package membership
