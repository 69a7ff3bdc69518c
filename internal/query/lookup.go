package query

// Lookup is a condition of a where that an index of top-level metadata
// fields can answer: every item the where matches has Field equal to one
// of Values (a scalar: string, float64, bool or nil), or, with Contains,
// an array holding one of them. An index that lists the items so
// described lists every match (and maybe more, which the where then
// drops).
type Lookup struct {
	Field    string
	Values   []any
	Contains bool
}

// Lookups returns the conditions of f that every match must meet and an
// index can answer: eq, in and contains on a top-level metadata field
// with scalar values, among the conjuncts of f (its and-ed conditions, at
// any depth of and). Nil when there are none: the find scans.
func (f *Filter) Lookups() []Lookup {
	var out []Lookup
	f.lookups(&out)
	return out
}

func (f *Filter) lookups(out *[]Lookup) {
	if f == nil {
		return
	}
	switch f.kind {
	case kindAnd:
		for _, k := range f.kids {
			k.lookups(out)
		}
		return
	case kindOr, kindNot:
		return
	}
	if f.field.name != "metadata" || len(f.field.path) != 1 {
		return
	}
	switch f.op {
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
