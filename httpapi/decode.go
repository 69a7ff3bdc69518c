package httpapi

import (
	"bytes"
	"strconv"

	"github.com/soullabs/brainy/internal/item"
	"github.com/soullabs/brainy/internal/jsontext"
)

// readOnlyFields are item fields a client may send back unchanged (for
// example a GET response edited and PUT again); the server owns them and
// ignores what the body says.
var readOnlyFields = map[string]bool{"tenant": true, "createdAt": true, "updatedAt": true, "version": true}

// DecodeItem parses a request body for POST or PUT into an item. It checks
// syntax, UTF-8, depth, member counts and vector size against lim and
// rejects unknown and duplicate fields; it does not check id or type
// (the backend does, with the tenant). The item's byte slices are fresh.
func DecodeItem(body []byte, lim *item.Limits) (*item.Item, error) {
	it := &item.Item{}
	err := decodeObject(body, lim, func(name string, v []byte) error {
		var err error
		switch name {
		case "id":
			it.ID, err = stringField(name, v)
		case "type":
			it.Type, err = stringField(name, v)
		case "data":
			it.Data = v
		case "metadata":
			if v[0] != '{' && string(v) != "null" {
				return item.Invalid("invalid_metadata", "metadata must be a JSON object")
			}
			it.Metadata = v
		case "vector":
			it.Vector, err = vectorField(v, lim)
		default:
			return fieldError(name)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return it, nil
}

// DecodePatch parses a PATCH body. data and metadata are merge patches;
// type and vector replace; "vector": null removes the vector.
func DecodePatch(body []byte, lim *item.Limits) (id string, p *item.Patch, err error) {
	p = &item.Patch{}
	err = decodeObject(body, lim, func(name string, v []byte) error {
		var err error
		switch name {
		case "id":
			id, err = stringField(name, v)
		case "type":
			var t string
			t, err = stringField(name, v)
			p.Type = &t
		case "data":
			p.Data = v
		case "metadata":
			if v[0] != '{' && string(v) != "null" {
				return item.Invalid("invalid_metadata", "metadata must be a JSON object")
			}
			p.Metadata = v
		case "vector":
			p.Vector, err = vectorField(v, lim)
			p.HasVector = true
		default:
			return fieldError(name)
		}
		return err
	})
	if err != nil {
		return "", nil, err
	}
	return id, p, nil
}

// decodeObject validates body within lim and calls fn once per member of
// the top-level object, with the unquoted name and a fresh copy of the
// compact value. Read-only fields are skipped.
func decodeObject(body []byte, lim *item.Limits, fn func(name string, value []byte) error) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return item.Invalid("empty_body", "the request body is empty; send a JSON object")
	}
	compact, err := jsontext.Compact(make([]byte, 0, len(body)), body, jsontext.Limits{MaxDepth: lim.MaxDepth, MaxFields: lim.MaxFields})
	if err != nil {
		return jsonError(err)
	}
	if compact[0] != '{' {
		return item.Invalid("invalid_json", "the request body must be a JSON object")
	}
	seen := make(map[string]bool, 8)
	return jsontext.Members(compact, func(k, v []byte) error {
		name, err := jsontext.Unquote(k)
		if err != nil {
			return jsonError(err)
		}
		if seen[name] {
			return item.Invalid("duplicate_field", "field %q appears more than once", name)
		}
		seen[name] = true
		if readOnlyFields[name] {
			return nil
		}
		// v aliases compact, which this call owns: no copy needed.
		return fn(name, v[:len(v):len(v)])
	})
}

func fieldError(name string) error {
	if len(name) > 64 {
		name = name[:64] + "…"
	}
	return item.Invalid("unknown_field", "unknown field %q; an item has id, type, data, metadata and vector", name)
}

func stringField(name string, v []byte) (string, error) {
	if v[0] != '"' {
		return "", item.Invalid("invalid_"+name, "%s must be a JSON string", name)
	}
	s, err := jsontext.Unquote(v)
	if err != nil {
		return "", jsonError(err)
	}
	return s, nil
}

func vectorField(v []byte, lim *item.Limits) ([]float32, error) {
	if string(v) == "null" {
		return nil, nil
	}
	if v[0] != '[' {
		return nil, item.Invalid("invalid_vector", "vector must be an array of numbers")
	}
	vec := make([]float32, 0, 16)
	err := jsontext.Elements(v, func(e []byte) error {
		if len(vec) >= lim.MaxVectorDims {
			return item.Invalid("vector_too_large", "vector has more than %d dimensions", lim.MaxVectorDims)
		}
		if e[0] != '-' && (e[0] < '0' || e[0] > '9') {
			return item.Invalid("invalid_vector", "vector must be an array of numbers")
		}
		f, err := strconv.ParseFloat(string(e), 32)
		if err != nil {
			return item.Invalid("invalid_vector", "vector element %s is out of float32 range", e)
		}
		vec = append(vec, float32(f))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return vec, nil
}

// jsonError turns a jsontext error into the matching *item.InvalidError.
func jsonError(err error) error {
	return item.Invalid(jsontext.Code(err), "%v", err)
}
