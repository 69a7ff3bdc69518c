package query

// Lookup is a condition of a where that an index of top-level metadata
// fields can answer: every item the where matches has Field equal to one
// of Values (a scalar: string, float64, bool or nil), or, with Contains,
// an array holding one of them, or, with Range, a number in it. An index
// that lists the items so described lists every match (and maybe more,
// which the where then drops).
type Lookup struct {
	Field    string
	Values   []any
	Contains bool
	Range    *Range
}

// Range is an interval of numbers; a nil bound is open.
type Range struct {
	Lo, Hi     *float64
	LoIn, HiIn bool // the bound itself is in
}

// narrow makes r the intersection of r and op value (gt, gte, lt, lte).
func (r *Range) narrow(op string, v float64) {
	switch op {
	case "gt", "gte":
		if r.Lo == nil || v > *r.Lo || v == *r.Lo && op == "gt" {
			r.Lo, r.LoIn = &v, op == "gte"
		}
	default:
		if r.Hi == nil || v < *r.Hi || v == *r.Hi && op == "lt" {
			r.Hi, r.HiIn = &v, op == "lte"
		}
	}
}

// Lookups returns the conditions of f that every match must meet and an
// index can answer: eq, in and contains on a top-level metadata field
// with scalar values, and gt, gte, lt, lte with numbers (one Range per
// field, their intersection, after the others), among the conjuncts of f
// (its and-ed conditions, at any depth of and). Nil when there are none:
// the find scans.
func (f *Filter) Lookups() []Lookup {
	var out []Lookup
	ranges := map[string]*Range{}
	var order []string
	f.lookups(&out, ranges, &order)
	for _, field := range order {
		out = append(out, Lookup{Field: field, Range: ranges[field]})
	}
	return out
}

func (f *Filter) lookups(out *[]Lookup, ranges map[string]*Range, order *[]string) {
	if f == nil {
		return
	}
	switch f.kind {
	case kindAnd:
		for _, k := range f.kids {
			k.lookups(out, ranges, order)
		}
		return
	case kindOr, kindNot:
		return
	}
	if f.field.name != "metadata" || len(f.field.path) != 1 {
		return
	}
	switch f.op {
	case "gt", "gte", "lt", "lte":
		if v, ok := f.value.(float64); ok {
			r := ranges[f.field.path[0]]
			if r == nil {
				r = &Range{}
				ranges[f.field.path[0]] = r
				*order = append(*order, f.field.path[0])
			}
			r.narrow(f.op, v)
		}
	case "eq":
		if scalar(f.value) {
			*out = append(*out, Lookup{Field: f.field.path[0], Values: []any{f.value}})
		}
	case "contains":
		if scalar(f.value) {
			*out = append(*out, Lookup{Field: f.field.path[0], Values: []any{f.value}, Contains: true})
		}
	case "in":
		vs := f.value.([]any)
		for _, v := range vs {
			if !scalar(v) {
				return
			}
		}
		*out = append(*out, Lookup{Field: f.field.path[0], Values: vs})
	}
}

// scalar reports whether v, a decoded JSON value, is a string, number,
// boolean or null.
func scalar(v any) bool {
	switch v.(type) {
	case string, float64, bool, nil:
		return true
	}
	return false
}
