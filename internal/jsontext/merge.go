package jsontext

// MergePatch applies the JSON merge patch (RFC 7386) patch to target and
// appends the result to dst. Both inputs must be compact, valid JSON (from
// Compact); an empty target means "absent". The result is deterministic:
// target members keep their order, new members follow in patch order, so
// every replica applying the same patch computes the same bytes.
func MergePatch(dst, target, patch []byte) ([]byte, error) {
	if len(patch) == 0 || patch[0] != '{' {
		return append(dst, patch...), nil
	}
	type member struct {
		name      string
		key, val  []byte
		patchVal  []byte
		patched   bool
		fromPatch bool
	}
	var members []member
	index := map[string]int{}
	if len(target) > 0 && target[0] == '{' {
		err := Members(target, func(k, v []byte) error {
			name, err := Unquote(k)
			if err != nil {
				return err
			}
			if i, dup := index[name]; dup { // last one wins, as in encoding/json
				members[i].val = v
				return nil
			}
			index[name] = len(members)
			members = append(members, member{name: name, key: k, val: v})
			return nil
		})
		if err != nil {
			return dst, err
		}
	}
	err := Members(patch, func(k, v []byte) error {
		name, err := Unquote(k)
		if err != nil {
			return err
		}
		if i, ok := index[name]; ok {
			members[i].patchVal, members[i].patched = v, true
			return nil
		}
		index[name] = len(members)
		members = append(members, member{name: name, key: k, patchVal: v, patched: true, fromPatch: true})
		return nil
	})
	if err != nil {
		return dst, err
	}
	dst = append(dst, '{')
	first := true
	for _, m := range members {
		val := m.val
		if m.patched {
			if string(m.patchVal) == "null" {
				continue
			}
			merged, err := MergePatch(nil, m.val, m.patchVal)
			if err != nil {
				return dst, err
			}
			val = merged
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, m.key...)
		dst = append(dst, ':')
		dst = append(dst, val...)
	}
	return append(dst, '}'), nil
}
