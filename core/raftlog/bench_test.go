package raftlog

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/soullabs/brainy/tiers"
	"github.com/soullabs/brainy/tiers/disk"
)

// cycleWriter persists driver cycles: each group's new entries and hard
// state in one synced write, and compactions.
type cycleWriter interface {
	cycle(groups [][]*pb.Entry, hs []*pb.HardState, sync bool) error
	compact(g GroupID, from, to, term uint64) error
	close() error
}

type raftlogWriter struct {
	l    *Log
	b, c Batch
}

func (w *raftlogWriter) cycle(groups [][]*pb.Entry, hs []*pb.HardState, sync bool) error {
	w.b.Reset()
	for g, ents := range groups {
		w.b.SetHardState(GroupID(g), hs[g])
		w.b.Append(GroupID(g), ents)
	}
	return w.l.Write(&w.b, sync)
}

func (w *raftlogWriter) compact(g GroupID, _, to, term uint64) error {
	w.c.Reset()
	w.c.Compact(g, to, term)
	return w.l.Write(&w.c, false)
}

func (w *raftlogWriter) close() error { return w.l.Close() }

// pebbleWriter writes as core/multiraft does today (storage.go, ready.go,
// snapshot.go): entries as protobuf under r<group>e<index>, the hard
// state under r<group>h, one synced batch per cycle; a compaction deletes
// each entry's key and sets r<group>t, unsynced.
type pebbleWriter struct {
	st   *disk.Store
	b, c tiers.Batch
}

func mrKey(g GroupID, kind byte) []byte {
	k := make([]byte, 0, 14)
	k = append(k, 'r')
	k = binary.BigEndian.AppendUint32(k, uint32(g))
	return append(k, kind)
}

func (w *pebbleWriter) cycle(groups [][]*pb.Entry, hs []*pb.HardState, sync bool) error {
	w.b.Reset()
	for g, ents := range groups {
		data, err := proto.Marshal(hs[g])
		if err != nil {
			return err
		}
		w.b.Set(mrKey(GroupID(g), 'h'), data)
		for _, e := range ents {
			data, err := proto.Marshal(e)
			if err != nil {
				return err
			}
			w.b.Set(binary.BigEndian.AppendUint64(mrKey(GroupID(g), 'e'), e.GetIndex()), data)
		}
	}
	return w.st.Apply(context.Background(), &w.b, sync)
}

func (w *pebbleWriter) compact(g GroupID, from, to, term uint64) error {
	w.c.Reset()
	for i := from; i <= to; i++ {
		w.c.Delete(binary.BigEndian.AppendUint64(mrKey(g, 'e'), i))
	}
	w.c.Set(mrKey(g, 't'), binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, to), term))
	return w.st.Apply(context.Background(), &w.c, false)
}

func (w *pebbleWriter) close() error { return w.st.Close() }

// BenchmarkAppend persists driver cycles — every group gets entries
// entries of 200 bytes and a hard state, synced — through the log and,
// side by side, through a pebble store (tiers/disk) written the way
// core/multiraft writes its log today. Each group's log is compacted to
// its last benchKeep entries once it holds twice that, as multiraft does
// (LogKeep). The nosync case skips the fsyncs, whose latency depends on
// the disk (and on who else uses it), to compare what the two cost in
// CPU alone. Besides ns/op (one cycle) it reports, per entry: wall time,
// the process's CPU time (pebble's flushes and compactions included, as
// far as they ran), bytes passed to write calls, and allocations.
func BenchmarkAppend(b *testing.B) {
	for _, c := range []struct {
		groups, entries int
		nosync          bool
	}{{64, 1, false}, {64, 8, false}, {1024, 1, false}, {64, 8, true}} {
		for _, backend := range []string{"raftlog", "pebble"} {
			name := fmt.Sprintf("groups=%d/entries=%d/%s", c.groups, c.entries, backend)
			if c.nosync {
				name = fmt.Sprintf("groups=%d/entries=%d/nosync/%s", c.groups, c.entries, backend)
			}
			b.Run(name, func(b *testing.B) {
				var w cycleWriter
				if backend == "raftlog" {
					l, err := Open(Config{Dir: b.TempDir()})
					if err != nil {
						b.Fatal(err)
					}
					w = &raftlogWriter{l: l}
				} else {
					st, err := disk.Open(disk.Config{Dir: b.TempDir()})
					if err != nil {
						b.Fatal(err)
					}
					w = &pebbleWriter{st: st}
				}
				benchCycles(b, w, c.groups, c.entries, !c.nosync)
			})
		}
	}
}

const benchKeep = 1000

func benchCycles(b *testing.B, w cycleWriter, groups, perGroup int, sync bool) {
	data := []byte(strings.Repeat("x", 200))
	typ := pb.EntryType_EntryNormal
	term := uint64(1)
	ents := make([][]*pb.Entry, groups)
	idx := make([][]uint64, groups) // the entries' Index fields point here
	hs := make([]*pb.HardState, groups)
	commit := make([]uint64, groups)
	first := make([]uint64, groups)
	for g := range ents {
		idx[g] = make([]uint64, perGroup)
		for i := range perGroup {
			ents[g] = append(ents[g], &pb.Entry{Term: &term, Index: &idx[g][i], Type: &typ, Data: data})
		}
		hs[g] = &pb.HardState{Term: &term, Vote: &term, Commit: &commit[g]}
		first[g] = 1
	}
	next := uint64(1)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mallocs := ms.Mallocs
	cpu0, wchar0 := cpuTime(), writtenBytes()
	start := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		for g := range ents {
			for i := range idx[g] {
				idx[g][i] = next + uint64(i)
			}
			commit[g] = next - 1
		}
		if err := w.cycle(ents, hs, sync); err != nil {
			b.Fatal(err)
		}
		next += uint64(perGroup)
		last := next - 1
		for g := range ents {
			if last-first[g]+1 >= 2*benchKeep {
				to := last - benchKeep
				if err := w.compact(GroupID(g), first[g], to, term); err != nil {
					b.Fatal(err)
				}
				first[g] = to + 1
			}
		}
	}
	elapsed, cpu, wchar := time.Since(start), cpuTime()-cpu0, writtenBytes()-wchar0
	runtime.ReadMemStats(&ms)
	n := float64(b.N * groups * perGroup)
	b.ReportMetric(float64(elapsed.Nanoseconds())/n, "ns/entry")
	b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/entry")
	if wchar >= 0 {
		b.ReportMetric(float64(wchar)/n, "wbytes/entry")
	}
	b.ReportMetric(float64(ms.Mallocs-mallocs)/n, "allocs/entry")
	if err := w.close(); err != nil {
		b.Fatal(err)
	}
}

// writtenBytes is what the process passed to write calls so far
// (/proc/self/io wchar), or -1 where that is not known.
func writtenBytes() int64 {
	p, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(p), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
