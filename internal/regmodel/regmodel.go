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
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

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

// EndOfTime is the Return of a call whose outcome is unknown: it may take
// effect at any point after its Call.
const EndOfTime = int64(1) << 62

// Check runs porcupine on history. When the history is not linearizable,
// report says why: the path of a visualization (an HTML file kept in the
// system's temporary directory) and, for each key that cannot be
// linearized, the calls around the first one that could not be placed.
func Check(history []porcupine.Operation, timeout time.Duration) (res porcupine.CheckResult, report string) {
	res, info := porcupine.CheckOperationsVerbose(Model, history, timeout)
	if res != porcupine.Illegal {
		return res, ""
	}
	viz := "(not written)"
	if dir, err := os.MkdirTemp("", "brainy-history-"); err == nil {
		path := filepath.Join(dir, "history.html")
		if porcupine.VisualizePath(Model, info, path) == nil {
			viz = path
		}
	}
	return res, fmt.Sprintf("visualization: %s\n%s", viz, illegalExcerpt(history, info))
}

// Span renders when a call ran, in seconds since the history began.
func Span(op porcupine.Operation) string {
	ret := "…"
	if op.Return != EndOfTime {
		ret = fmt.Sprintf("%.6fs", float64(op.Return)/1e9)
	}
	return fmt.Sprintf("%.6fs-%s", float64(op.Call)/1e9, ret)
}

// illegalExcerpt shows, for each key whose history cannot be linearized,
// the end of the longest linearizable prefix and the calls around the
// first operation that could not be placed after it.
func illegalExcerpt(history []porcupine.Operation, info porcupine.LinearizationInfo) string {
	var b strings.Builder
	for _, part := range info.PartialLinearizationsOperations() {
		var longest []porcupine.Operation
		for _, l := range part {
			if len(l) > len(longest) {
				longest = l
			}
		}
		if len(longest) == 0 {
			continue
		}
		key := longest[0].Input.(Input).Key
		var ops []porcupine.Operation
		for _, op := range history {
			if op.Input.(Input).Key == key {
				ops = append(ops, op)
			}
		}
		if len(longest) == len(ops) {
			continue
		}
		fmt.Fprintf(&b, "key %s: %d of %d operations linearize; the last of them:\n", key, len(longest), len(ops))
		for _, op := range longest[max(0, len(longest)-8):] {
			fmt.Fprintf(&b, "  [%s] c%d %s\n", Span(op), op.ClientId, Describe(op.Input.(Input), op.Output.(Output)))
		}
		placed := map[[2]int64]bool{}
		for _, op := range longest {
			placed[[2]int64{int64(op.ClientId), op.Call}] = true
		}
		first := int64(-1)
		for _, op := range ops {
			if !placed[[2]int64{int64(op.ClientId), op.Call}] && (first < 0 || op.Call < first) {
				first = op.Call
			}
		}
		slices.SortFunc(ops, func(x, y porcupine.Operation) int { return cmp.Compare(x.Call, y.Call) })
		i := slices.IndexFunc(ops, func(op porcupine.Operation) bool { return op.Call == first })
		fmt.Fprintf(&b, "  calls of %s around the first one not placed (*: not placed):\n", key)
		for _, op := range ops[max(0, i-15):min(len(ops), i+25)] {
			mark := " "
			if !placed[[2]int64{int64(op.ClientId), op.Call}] {
				mark = "*"
			}
			fmt.Fprintf(&b, " %s[%s] c%d %s\n", mark, Span(op), op.ClientId, Describe(op.Input.(Input), op.Output.(Output)))
		}
	}
	return b.String()
}
