package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// report prints the markdown summary of results.
func report(w io.Writer, cfg *Config, results []result) {
	fmt.Fprintf(w, "%d adds per run (POST /v1/items, %d-byte values), Puts counted from the first add until %v after the last answer\n\n",
		cfg.Items, cfg.ValueSize, cfg.Settle)
	if cfg.Pace > 0 {
		fmt.Fprintf(w, "Each writer waits %v after every answer before its next add.\n\n", cfg.Pace)
	}
	fmt.Fprintln(w, "| nodes | writers | acked / sent | items/s | Puts | segment | checkpoint | MANIFEST | claim | other | Puts/item | Puts/item/node | items per segment Put | KiB per segment Put |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		p := puts(r.Load)
		class := func(c string) int64 {
			return r.Load.sum(func(k reqKind) bool { return k.Op == opPut && k.Class == c }).N
		}
		seg := r.Load.sum(func(k reqKind) bool { return k.Op == opPut && k.Class == classSegment })
		acked := float64(max(r.Acked, 1))
		perSeg, kib := "-", "-"
		if seg.N > 0 {
			perSeg = fmt.Sprintf("%.1f", float64(r.Acked*r.Nodes)/float64(seg.N))
			kib = fmt.Sprintf("%.1f", float64(seg.Bytes)/float64(seg.N)/1024)
		}
		fmt.Fprintf(w, "| %d | %d | %d / %d | %.0f | %d | %d | %d | %d | %d | %d | %.3f | %.3f | %s | %s |\n",
			r.Nodes, r.Writers, r.Acked, r.Sent, float64(r.Acked)/r.Elapsed.Seconds(), p.N,
			class(classSegment), class(classCheckpoint), class(classManifest), class(classClaim), class(classOther),
			float64(p.N)/acked, float64(p.N)/acked/float64(r.Nodes), perSeg, kib)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Items per segment Put counts every replica's copy (acked × nodes ÷ segment Puts).")
	fmt.Fprintln(w)
	for _, r := range results {
		var other []string
		for _, op := range []string{opGet, opRangeGet, opHead, opList, opDelete, opOther} {
			if t := r.Load.sum(func(k reqKind) bool { return k.Op == op }); t.N+t.Failed > 0 {
				other = append(other, fmt.Sprintf("%s %d", op, t.N))
			}
		}
		failed := r.Load.sum(func(k reqKind) bool { return true }).Failed
		errs := "none"
		if len(r.Errors) > 0 {
			var es []string
			for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
				es = append(es, fmt.Sprintf("%d × %s", r.Errors[k], k))
			}
			errs = strings.Join(es, ", ")
		}
		if len(other) == 0 {
			other = []string{"none"}
		}
		idle := ""
		if r.IdleFor > 0 {
			idle = fmt.Sprintf("; idle afterwards: %d Puts in %v (%s)", puts(r.Idle).N, r.IdleFor, byClass(r.Idle))
		}
		fmt.Fprintf(w, "- %d node(s), %d writers: %.2f s; other requests during the load: %s; non-2xx object-store answers: %d; "+
			"failed adds: %s; Puts before the load (startup): %d%s\n",
			r.Nodes, r.Writers, r.Elapsed.Seconds(), strings.Join(other, ", "), failed, errs, puts(r.Startup).N, idle)
	}
}

// byClass lists the Puts of c by class.
func byClass(c counts) string {
	var out []string
	for _, cl := range []string{classSegment, classCheckpoint, classManifest, classClaim, classOther} {
		if n := c.sum(func(k reqKind) bool { return k.Op == opPut && k.Class == cl }).N; n > 0 {
			out = append(out, fmt.Sprintf("%s %d", cl, n))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
