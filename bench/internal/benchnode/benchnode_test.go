package benchnode

import (
	"testing"
	"time"
)

// TestLeadersSettle: the leaders settle once the same map has been seen
// for a second; a change or a cluster that is not ready starts over.
func TestLeadersSettle(t *testing.T) {
	var l Leaders
	a, b := map[int]string{0: "n1", 1: "n2"}, map[int]string{0: "n1", 1: "n3"}
	if ok, why := l.Settled(nil, "n2 sees 1 healthy nodes"); ok || why != "n2 sees 1 healthy nodes" {
		t.Fatalf("not ready: %v %q", ok, why)
	}
	if ok, why := l.Settled(a, ""); ok || why != "leaders still moving" {
		t.Fatalf("first sight: %v %q", ok, why)
	}
	if ok, _ := l.Settled(a, ""); ok {
		t.Fatal("settled at once")
	}
	l.since = l.since.Add(-2 * time.Second)
	if ok, _ := l.Settled(map[int]string{0: "n1", 1: "n2"}, ""); !ok {
		t.Fatal("same leaders for 2 s: not settled")
	}
	if ok, _ := l.Settled(b, ""); ok {
		t.Fatal("a moved leader counts as settled")
	}
	l.since = l.since.Add(-2 * time.Second)
	if ok, _ := l.Settled(nil, "why"); ok {
		t.Fatal("a cluster that is not ready counts as settled")
	}
	if ok, _ := l.Settled(b, ""); ok {
		t.Fatal("settled right after the cluster was not ready")
	}
}
