package brainy_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/soullabs/brainy"
	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/memory"
)

// A store with no configuration at all: one node, in memory.
func Example() {
	ctx := context.Background()
	brain, err := brainy.New(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer brain.Close()

	it, err := brain.Add(ctx, brainy.Item{Type: "person", Data: json.RawMessage(`{"name":"John"}`)})
	if err != nil {
		log.Fatal(err)
	}
	got, err := brain.Get(ctx, it.ID)
	if err != nil {
		log.Fatal(err)
	}
	var person struct{ Name string }
	if err := got.Decode(&person); err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.Type, person.Name)
	// Output: person John
}

// WithStorage makes the store durable: every write is in the synced
// write-ahead log before Add returns.
func ExampleWithStorage() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "brainy-example")
	defer os.RemoveAll(dir)

	brain, err := brainy.New(ctx, brainy.WithStorage(dir))
	if err != nil {
		log.Fatal(err)
	}
	brain.Add(ctx, brainy.Item{ID: "john", Type: "person", Data: json.RawMessage(`{"name":"John"}`)})
	brain.Close()

	brain, err = brainy.New(ctx, brainy.WithStorage(dir)) // a restart
	if err != nil {
		log.Fatal(err)
	}
	defer brain.Close()
	it, err := brain.Get(ctx, "john")
	fmt.Println(string(it.Data), err)
	// Output: {"name":"John"} <nil>
}

// An object-store URL needs package brainycloud, so that only programs
// that use one link the cloud SDKs; the error says so.
func ExampleWithStorage_objectStore() {
	_, err := brainy.New(context.Background(), brainy.WithStorage("s3://bucket/prefix"))
	fmt.Println(err)
	// Output: brainy: storage "s3://bucket/prefix" is an object store; brainy.WithStorage opens only memory and directories: import "github.com/soullabs/brainy/brainycloud" and use brainycloud.WithStorage("s3://bucket/prefix")
}

// WithStore keeps the data in a tiers.Store that the program opens; the
// Brain closes it.
func ExampleWithStore() {
	ctx := context.Background()
	brain, err := brainy.New(ctx, brainy.WithStore(func(context.Context, brainy.StoreConfig) (tiers.Store, error) {
		return memory.New(), nil
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer brain.Close()
	brain.Add(ctx, brainy.Item{ID: "john", Data: json.RawMessage(`{"name":"John"}`)})
	fmt.Println(brain.Metrics().Storage.Backend, brain.Metrics().Storage.Items)
	// Output: memory 1
}

// Update replaces an item; with the Version it read, it only succeeds if
// nobody changed the item in between.
func ExampleBrain_Update() {
	ctx := context.Background()
	brain, _ := brainy.New(ctx)
	defer brain.Close()

	it, _ := brain.Add(ctx, brainy.Item{ID: "counter", Data: json.RawMessage(`1`)})
	it.Data = json.RawMessage(`2`)
	updated, err := brain.Update(ctx, *it)
	fmt.Println(string(updated.Data), err)

	it.Data = json.RawMessage(`3`) // it.Version is now stale
	_, err = brain.Update(ctx, *it)
	fmt.Println(errors.Is(err, brainy.ErrPreconditionFailed))
	// Output:
	// 2 <nil>
	// true
}

// Merge applies a JSON merge patch to data and metadata: members are
// added or replaced, and null removes one.
func ExampleBrain_Merge() {
	ctx := context.Background()
	brain, _ := brainy.New(ctx)
	defer brain.Close()

	brain.Add(ctx, brainy.Item{ID: "john", Data: json.RawMessage(`{"name":"John","age":30}`)})
	it, err := brain.Merge(ctx, "john", brainy.Patch{Data: json.RawMessage(`{"age":null,"city":"Oslo"}`)})
	fmt.Println(string(it.Data), err)
	// Output: {"name":"John","city":"Oslo"} <nil>
}

// List pages through items of one type in id order.
func ExampleBrain_List() {
	ctx := context.Background()
	brain, _ := brainy.New(ctx)
	defer brain.Close()

	for _, id := range []string{"a", "b", "c"} {
		brain.Add(ctx, brainy.Item{ID: id, Type: "letter"})
	}
	brain.Add(ctx, brainy.Item{ID: "1", Type: "digit"})

	opts := brainy.ListOptions{Type: "letter", Limit: 2}
	for {
		page, err := brain.List(ctx, opts)
		if err != nil {
			log.Fatal(err)
		}
		for _, it := range page.Items {
			fmt.Print(it.ID, " ")
		}
		if page.Cursor == "" {
			break
		}
		opts.Cursor = page.Cursor
	}
	fmt.Println()
	// Output: a b c
}

// Find filters items by metadata and ranks them by vector similarity.
func ExampleBrain_Find() {
	ctx := context.Background()
	brain, _ := brainy.New(ctx)
	defer brain.Close()

	brain.Add(ctx, brainy.Item{ID: "oslo", Type: "city", Metadata: []byte(`{"country":"no"}`), Vector: []float32{1, 0}})
	brain.Add(ctx, brainy.Item{ID: "bergen", Type: "city", Metadata: []byte(`{"country":"no"}`), Vector: []float32{0.8, 0.6}})
	brain.Add(ctx, brainy.Item{ID: "berlin", Type: "city", Metadata: []byte(`{"country":"de"}`), Vector: []float32{0, 1}})

	res, err := brain.Find(ctx, `{"type": "city", "where": {"metadata.country": "no"}, "near": {"vector": [0, 1], "k": 5}}`)
	if err != nil {
		log.Fatal(err)
	}
	for _, h := range res.Hits {
		fmt.Printf("%s %.1f\n", h.ID, h.Score)
	}
	_, err = brain.Find(ctx, `{"where": {"metadata.country": {"like": "n%"}}}`)
	fmt.Println(errors.Is(err, brainy.ErrInvalid))
	// Output:
	// bergen 0.6
	// oslo 0.0
	// true
}
