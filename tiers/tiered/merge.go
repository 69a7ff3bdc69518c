package tiered

import (
	"bytes"
	"errors"

	"github.com/soullabs/brainy/tiers"
)

// mergeIter merges the tiers' iterators. its[0] is the topmost tier; on
// equal keys the lowest index wins and the others are skipped, so every key
// shows once with the value of the topmost tier holding it.
type mergeIter struct {
	its   []tiers.Iterator
	valid []bool // valid[i]: its[i] is positioned on a key
	at    []bool // at[i]: its[i] is on the key last returned, to advance on Next
	cur   int    // index of the iterator whose key was last returned, or -1
	err   error
}

func newMergeIter(its []tiers.Iterator) *mergeIter {
	m := &mergeIter{its: its, valid: make([]bool, len(its)), at: make([]bool, len(its)), cur: -1}
	for i := range m.at {
		m.at[i] = true // every iterator starts before its first key
	}
	return m
}

func (m *mergeIter) Next() bool {
	if m.err != nil {
		return false
	}
	for i, it := range m.its {
		if !m.at[i] {
			continue
		}
		m.at[i] = false
		m.valid[i] = it.Next()
		if !m.valid[i] {
			if err := it.Err(); err != nil {
				m.err = err
				m.cur = -1
				return false
			}
		}
	}
	m.cur = -1
	for i := range m.its {
		if !m.valid[i] {
			continue
		}
		if m.cur < 0 || bytes.Compare(m.its[i].Key(), m.its[m.cur].Key()) < 0 {
			m.cur = i
		}
	}
	if m.cur < 0 {
		return false
	}
	key := m.its[m.cur].Key()
	for i := range m.its {
		m.at[i] = m.valid[i] && (i == m.cur || bytes.Equal(m.its[i].Key(), key))
	}
	return true
}

func (m *mergeIter) Key() []byte   { return m.its[m.cur].Key() }
func (m *mergeIter) Value() []byte { return m.its[m.cur].Value() }
func (m *mergeIter) Err() error    { return m.err }

func (m *mergeIter) Close() error {
	var errs []error
	for _, it := range m.its {
		errs = append(errs, it.Close())
	}
	m.its = nil
	return errors.Join(errs...)
}
