package server

import (
	"bytes"
	"strings"
	"testing"
)

func TestGossipKey(t *testing.T) {
	rootA, rootB := []byte("root secret of cluster A, 32 b.."), []byte("root secret of cluster B, 32 b..")
	ka, err := gossipKey(nil, rootA, "10.0.0.1:7946")
	if err != nil || len(ka) != 32 {
		t.Fatalf("derived key: %d bytes, %v", len(ka), err)
	}
	again, _ := gossipKey(nil, rootA, "10.0.0.2:7946")
	kb, _ := gossipKey(nil, rootB, "10.0.0.1:7946")
	if !bytes.Equal(ka, again) || bytes.Equal(ka, kb) {
		t.Error("nodes of one cluster must derive one key, other clusters another")
	}
	if bytes.Contains(ka, rootA[:8]) {
		t.Error("the gossip key reveals the root secret")
	}
	given := bytes.Repeat([]byte{7}, 16)
	if k, _ := gossipKey(given, rootA, "10.0.0.1:7946"); !bytes.Equal(k, given) {
		t.Error("a configured key must be used as given")
	}
	if k, err := gossipKey(nil, nil, "127.0.0.1:7946"); k != nil || err != nil {
		t.Errorf("loopback without a root: %x %v, want gossip in the clear", k, err)
	}
	if _, err := gossipKey(nil, nil, "10.0.0.1:7946"); err == nil || !strings.Contains(err.Error(), "--gossip-key") {
		t.Errorf("off loopback without a key or root: %v, want a refusal naming --gossip-key", err)
	}
}
