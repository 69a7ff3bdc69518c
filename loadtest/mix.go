package loadtest

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Op is one kind of request in a workload.
type Op uint8

// Operations of WorkloadItems, and OpURL for WorkloadURL.
const (
	OpRead  Op = iota // GET /v1/items/{id}
	OpWrite           // PUT /v1/items/{id} with a generated body
	OpAdd             // POST /v1/items with a generated body (server picks the id)
	OpURL             // Config.Method on the URL template
	numOps
)

var opNames = [numOps]string{"read", "write", "add", "url"}

// String returns the op's name as used in a mix spec and in results.
func (o Op) String() string {
	if o < numOps {
		return opNames[o]
	}
	return "op" + strconv.Itoa(int(o))
}

// Mix is a parsed operation mix: integer weights per op.
type Mix struct {
	weights [numOps]uint32
	total   uint32
}

// maxMixWeight bounds each weight so the total fits comfortably in uint32.
const maxMixWeight = 1_000_000

// ParseMix parses a mix spec such as "read=90,write=10" or "read=8, add=2".
// Ops are read, write and add; weights are non-negative integers with a
// positive sum; each op may appear once.
func ParseMix(spec string) (Mix, error) {
	var m Mix
	if strings.TrimSpace(spec) == "" {
		return m, fmt.Errorf("loadtest: mix %q is empty (want e.g. read=90,write=10)", spec)
	}
	var seen [numOps]bool
	for part := range strings.SplitSeq(spec, ",") {
		name, val, ok := strings.Cut(part, "=")
		name, val = strings.TrimSpace(name), strings.TrimSpace(val)
		if !ok {
			return Mix{}, fmt.Errorf("loadtest: mix %q: %q must be op=weight", spec, part)
		}
		op := numOps
		for i, n := range opNames[:OpURL] {
			if strings.EqualFold(name, n) {
				op = Op(i)
			}
		}
		if op == numOps {
			return Mix{}, fmt.Errorf("loadtest: mix %q: unknown op %q (want read, write or add)", spec, name)
		}
		if seen[op] {
			return Mix{}, fmt.Errorf("loadtest: mix %q: op %q given twice", spec, name)
		}
		seen[op] = true
		w, err := strconv.ParseUint(val, 10, 32)
		if err != nil || w > maxMixWeight {
			return Mix{}, fmt.Errorf("loadtest: mix %q: weight %q must be an integer in [0, %d]", spec, val, maxMixWeight)
		}
		m.weights[op] = uint32(w)
		m.total += uint32(w)
	}
	if m.total == 0 {
		return Mix{}, fmt.Errorf("loadtest: mix %q: weights sum to 0", spec)
	}
	return m, nil
}

// Weight returns op's weight.
func (m Mix) Weight(op Op) uint32 {
	if op >= numOps {
		return 0
	}
	return m.weights[op]
}

// String returns the mix in canonical form ("read=90,write=10"), which
// ParseMix accepts.
func (m Mix) String() string {
	var b strings.Builder
	for op := range OpURL {
		if m.weights[op] == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(op.String())
		b.WriteByte('=')
		b.WriteString(strconv.FormatUint(uint64(m.weights[op]), 10))
	}
	return b.String()
}

// Pick draws an op with probability proportional to its weight.
func (m *Mix) Pick(r *rand.Rand) Op {
	x := r.Uint32N(m.total)
	for op := range numOps {
		if x < m.weights[op] {
			return op
		}
		x -= m.weights[op]
	}
	return OpRead // unreachable: total is the sum of weights
}
