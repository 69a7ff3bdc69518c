package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/tiers"
)

// A register per key, with the version the server assigned. Versions are
// not predictable, so writes report theirs and the model adopts it; reads
// and conditional writes are then checked against it.
type regState struct {
	exists  bool
	value   string
	version string
}

type regInput struct {
	op    string // get, put, cas, del
	key   string
	value string // put, cas
	ifVer string // cas
}

type regOutput struct {
	ok      bool   // put/cas/del succeeded; get found the item
	value   string // get
	version string // get, put, cas
	unknown bool   // the call failed in a way that says nothing (timeout)
}

var regModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(regInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return regState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(regState), input.(regInput), output.(regOutput)
		if out.unknown {
			// The call failed without saying whether it happened; its
			// Return is the end of time, so "it did not happen" is the
			// choice of linearizing it last. If it happened, its version
			// is unknown ("?") until a read shows it.
			switch in.op {
			case "get":
				return true, s
			case "put":
				return true, regState{exists: true, value: in.value, version: "?"}
			case "cas":
				if s.exists && (s.version == in.ifVer || s.version == "?") {
					return true, regState{exists: true, value: in.value, version: "?"}
				}
				return true, s
			case "del":
				return true, regState{}
			}
		}
		switch in.op {
		case "get":
			if !out.ok {
				return !s.exists, s
			}
			if s.version == "?" {
				return s.exists && s.value == out.value, regState{exists: true, value: out.value, version: out.version}
			}
			return s.exists && s.value == out.value && s.version == out.version, s
		case "put":
			// A put always succeeds, and its version is new.
			if !out.ok || out.version == s.version {
				return false, s
			}
			return true, regState{exists: true, value: in.value, version: out.version}
		case "cas":
			if s.exists && s.version == "?" {
				// Whether ifVer matched is unknown: the outcome decides.
				if out.ok {
					return true, regState{exists: true, value: in.value, version: out.version}
				}
				return true, s
			}
			if s.exists && s.version == in.ifVer {
				if !out.ok || out.version == s.version {
					return false, s
				}
				return true, regState{exists: true, value: in.value, version: out.version}
			}
			return !out.ok, s
		case "del":
			if out.ok != s.exists {
				return false, s
			}
			return true, regState{}
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		return fmt.Sprintf("%s(%s,%s,%s) -> %+v", in.op, in.key, in.value, in.ifVer, out)
	},
}

// TestLinearizable records concurrent gets, puts, compare-and-sets and
// deletes on a few keys and checks the history with porcupine against a
// register per key. A tiny record cache makes evictions and cache fills
// race with commits, which is where a stale read would come from.
func TestLinearizable(t *testing.T) {
	stores(t, func(t *testing.T, open func() tiers.Store) {
		ctx := context.Background()
		s := open()
		defer s.Close()
		n, err := Open(ctx, Config{Store: s, CacheBytes: 8 << 10})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()

		const clients, opsEach, keys = 8, 400, 3
		start := time.Now()
		var mu sync.Mutex
		var history []porcupine.Operation
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(c), 7))
				lastSeen := map[string]string{} // versions this client read, for CAS
				for i := range opsEach {
					in := regInput{key: fmt.Sprint("k", rng.IntN(keys)), value: fmt.Sprintf("%d-%d", c, i)}
					call := time.Since(start).Nanoseconds()
					var out regOutput
					switch r := rng.IntN(10); {
					case r < 4:
						in.op = "get"
						it, err := n.Get(ctx, "t", in.key)
						switch {
						case err == nil:
							var v string
							json.Unmarshal(it.Data, &v)
							out = regOutput{ok: true, value: v, version: it.Version}
							lastSeen[in.key] = it.Version
						case errors.Is(err, item.ErrNotFound):
						default:
							t.Error(err)
							return
						}
					case r < 7:
						in.op = "put"
						data, _ := json.Marshal(in.value)
						it, _, err := n.Put(ctx, "t", &item.Item{ID: in.key, Data: data}, item.Cond{})
						if err != nil {
							t.Error(err)
							return
						}
						out = regOutput{ok: true, version: it.Version}
						lastSeen[in.key] = it.Version
					case r < 9:
						in.op, in.ifVer = "cas", lastSeen[in.key]
						if in.ifVer == "" {
							in.ifVer = "0"
						}
						data, _ := json.Marshal(in.value)
						it, _, err := n.Put(ctx, "t", &item.Item{ID: in.key, Data: data}, item.Cond{IfMatch: in.ifVer})
						switch {
						case err == nil:
							out = regOutput{ok: true, version: it.Version}
							lastSeen[in.key] = it.Version
						case errors.Is(err, item.ErrPreconditionFailed):
						default:
							t.Error(err)
							return
						}
					default:
						in.op = "del"
						err := n.Delete(ctx, "t", in.key, item.Cond{})
						switch {
						case err == nil:
							out.ok = true
						case errors.Is(err, item.ErrNotFound):
						default:
							t.Error(err)
							return
						}
					}
					ret := time.Since(start).Nanoseconds()
					mu.Lock()
					history = append(history, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		switch res := porcupine.CheckOperationsTimeout(regModel, history, 60*time.Second); res {
		case porcupine.Ok:
		case porcupine.Illegal:
			t.Fatalf("the history of %d operations is not linearizable", len(history))
		default:
			t.Fatalf("linearizability check inconclusive (%v) for %d operations", res, len(history))
		}
	})
}
