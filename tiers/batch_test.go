package tiers

import (
	"fmt"
	"slices"
	"testing"
)

func TestBatchAppend(t *testing.T) {
	var a, b Batch
	a.Set([]byte("a1"), []byte("v1"))
	a.Delete([]byte("a2"))
	b.Delete([]byte("b1"))
	b.Set([]byte("b2"), []byte("value2"))
	b.Set([]byte("b3"), nil)
	a.Append(&b)
	var got []string
	_ = a.Each(func(del bool, key, value []byte) error {
		got = append(got, fmt.Sprintf("%v %s=%s", del, key, value))
		return nil
	})
	want := []string{"false a1=v1", "true a2=", "true b1=", "false b2=value2", "false b3="}
	if !slices.Equal(got, want) {
		t.Fatalf("after Append: %q, want %q", got, want)
	}
	if b.Len() != 3 || a.Len() != 5 || a.Size() != len("a1v1a2b1b2value2b3") {
		t.Fatalf("lengths: appended %d writes (%d bytes), source %d", a.Len(), a.Size(), b.Len())
	}
}
