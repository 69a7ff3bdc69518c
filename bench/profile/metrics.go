package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// metricsView is the part of GET /v1/metrics the driver reads. It is its
// own small type (not internal/nodestats.Snapshot) so that the "tuning"
// section, which only some builds have, is kept as the node sent it.
type metricsView struct {
	Nodes struct {
		Self    string `json:"self"`
		Healthy int    `json:"healthy"`
	} `json:"nodes"`
	Storage struct {
		Items uint64 `json:"items"`
	} `json:"storage"`
	Partitions []partitionView `json:"partitions"`
	// Tuning is the "tuning" section verbatim; nil when absent or null.
	Tuning json.RawMessage `json:"tuning"`
}

// partitionView is one partition's raft group as a replica sees it.
type partitionView struct {
	ID       int      `json:"id"`
	Leader   string   `json:"leader"`
	Voters   []string `json:"voters"`
	Learners []string `json:"learners"`
}

// parseMetrics decodes a GET /v1/metrics body.
func parseMetrics(body []byte) (*metricsView, error) {
	var m metricsView
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("GET /v1/metrics: %v", err)
	}
	if t := bytes.TrimSpace(m.Tuning); len(t) == 0 || string(t) == "null" {
		m.Tuning = nil
	}
	return &m, nil
}

// readyWhy reports why views, one per node, do not describe a ready
// cluster ("" when they do): every node sees nodes healthy nodes and holds
// exactly partitions partitions, each with a leader, and the nodes agree
// on the leaders. It also returns the leaders when ready.
func readyWhy(views []*metricsView, nodes, partitions int) (string, map[int]string) {
	leaders := map[int]string{}
	for _, v := range views {
		if v.Nodes.Healthy != nodes {
			return fmt.Sprintf("%s sees %d healthy nodes, want %d", v.Nodes.Self, v.Nodes.Healthy, nodes), nil
		}
		if len(v.Partitions) != partitions {
			return fmt.Sprintf("%s holds %d partitions, want %d", v.Nodes.Self, len(v.Partitions), partitions), nil
		}
		for _, p := range v.Partitions {
			if p.Leader == "" {
				return fmt.Sprintf("%s: partition %d has no leader", v.Nodes.Self, p.ID), nil
			}
			if l, ok := leaders[p.ID]; ok && l != p.Leader {
				return fmt.Sprintf("partition %d: leader %s or %s", p.ID, l, p.Leader), nil
			}
			leaders[p.ID] = p.Leader
		}
	}
	if len(leaders) != partitions {
		return fmt.Sprintf("%d of %d partitions seen", len(leaders), partitions), nil
	}
	return "", leaders
}

// learnerWhy reports why v (a voter's view) does not list reader as a
// learner of every one of its partitions ("" when it does).
func learnerWhy(v *metricsView, reader string, partitions int) string {
	if len(v.Partitions) != partitions {
		return fmt.Sprintf("%s holds %d partitions, want %d", v.Nodes.Self, len(v.Partitions), partitions)
	}
	missing := 0
	for _, p := range v.Partitions {
		if !slices.Contains(p.Learners, reader) {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Sprintf("%d of %d partitions lack learner %s on %s", missing, partitions, reader, v.Nodes.Self)
	}
	return ""
}

// partitionsOf returns the partition count a node started with args has:
// the value of a --partitions flag among them, else def.
func partitionsOf(args []string, def int) int {
	n := def
	for i, a := range args {
		a = "--" + strings.TrimLeft(a, "-")
		var v string
		switch {
		case a == "--partitions" && i+1 < len(args):
			v = args[i+1]
		case strings.HasPrefix(a, "--partitions="):
			v = strings.TrimPrefix(a, "--partitions=")
		default:
			continue
		}
		if p, err := strconv.Atoi(v); err == nil && p > 0 {
			n = p
		}
	}
	return n
}

// splitConns spreads total connections over n targets as evenly as
// possible, the first ones taking the remainder.
func splitConns(total, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = total / n
		if i < total%n {
			out[i]++
		}
	}
	return out
}

// cpuTicks reads the aggregate "cpu" line of /proc/stat: busy (user,
// nice, system, irq, softirq) and total (those, idle, iowait and steal)
// clock ticks since boot.
func cpuTicks(stat []byte) (busy, total uint64, err error) {
	for line := range strings.Lines(string(stat)) {
		f := strings.Fields(line)
		if len(f) < 8 || f[0] != "cpu" {
			continue
		}
		for i, s := range f[1:] {
			if i >= 8 { // guest time is already counted in user and nice
				break
			}
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/stat: bad cpu field %q", s)
			}
			total += v
			switch i {
			case 3, 4, 7: // idle, iowait, steal
			default:
				busy += v
			}
		}
		return busy, total, nil
	}
	return 0, 0, fmt.Errorf("/proc/stat: no cpu line")
}
