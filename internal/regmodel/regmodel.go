// Package regmodel is the porcupine model the linearizability tests check
// histories against: a register per key holding a value and the version
// the store assigned it. Versions are not predictable, so writes report
// theirs and the model adopts it; reads and conditional writes are then
// checked against it.
//
// A call that failed without saying whether it happened (a timeout, a 503)
// has Output.Unknown set and should Return at the end of time: "it did
// not happen" is then the choice of linearizing it last, and if it did
// happen its version is unknown ("?") until a read shows it.
package regmodel

import (
	"fmt"

	"github.com/anishathalye/porcupine"
)

// Input is one call.
type Input struct {
	Op    string // get, put, cas, del
	Key   string
	Value string // put, cas
	IfVer string // cas
	Node  int    // which node was asked, for reports; not part of the model
}

// Output is what the call answered.
type Output struct {
	OK      bool   // put/cas/del succeeded; get found the item
	Value   string // get
	Version string // get, put, cas
	Unknown bool   // the call failed in a way that says nothing
	Detail  string // how it failed, for reports
}

type state struct {
	exists  bool
	value   string
	version string
}

// Model checks histories of Input/Output operations, partitioned by key.
var Model = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(Input).Key
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
	Init: func() any { return state{} },
	Step: func(st, input, output any) (bool, any) {
		s, in, out := st.(state), input.(Input), output.(Output)
		if out.Unknown {
			switch in.Op {
			case "get":
				return true, s
			case "put":
				return true, state{exists: true, value: in.Value, version: "?"}
			case "cas":
				if s.exists && (s.version == in.IfVer || s.version == "?") {
					return true, state{exists: true, value: in.Value, version: "?"}
				}
				return true, s
			case "del":
				return true, state{}
			}
		}
		switch in.Op {
		case "get":
			if !out.OK {
				return !s.exists, s
			}
			if s.version == "?" {
				return s.exists && s.value == out.Value, state{exists: true, value: out.Value, version: out.Version}
			}
			return s.exists && s.value == out.Value && s.version == out.Version, s
		case "put":
			// A put always succeeds, and its version is new.
			if !out.OK || out.Version == s.version {
				return false, s
			}
			return true, state{exists: true, value: in.Value, version: out.Version}
		case "cas":
			if s.exists && s.version == "?" {
				// Whether IfVer matched is unknown: the outcome decides.
				if out.OK {
					return true, state{exists: true, value: in.Value, version: out.Version}
				}
				return true, s
			}
			if s.exists && s.version == in.IfVer {
				if !out.OK || out.Version == s.version {
					return false, s
				}
				return true, state{exists: true, value: in.Value, version: out.Version}
			}
			return !out.OK, s
		case "del":
			if out.OK != s.exists {
				return false, s
			}
			return true, state{}
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		return Describe(input.(Input), output.(Output))
	},
}

// Describe renders a call for reports: n2 put(k1, "v") -> ok v1f.
func Describe(in Input, out Output) string {
	var res string
	switch {
	case out.Unknown:
		res = "unknown (" + out.Detail + ")"
	case in.Op == "get" && out.OK:
		res = fmt.Sprintf("%q v%s", out.Value, out.Version)
	case in.Op == "get":
		res = "not found"
	case out.OK && in.Op != "del":
		res = "ok v" + out.Version
	case out.OK:
		res = "ok"
	default:
		res = "failed (" + out.Detail + ")"
	}
	switch in.Op {
	case "put":
		return fmt.Sprintf("n%d put(%s, %q) -> %s", in.Node, in.Key, in.Value, res)
	case "cas":
		return fmt.Sprintf("n%d cas(%s, %q, if v%s) -> %s", in.Node, in.Key, in.Value, in.IfVer, res)
	default:
		return fmt.Sprintf("n%d %s(%s) -> %s", in.Node, in.Op, in.Key, res)
	}
}
