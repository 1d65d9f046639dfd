package eviction

import (
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// observation is one signal's measurement.
type observation struct {
	available, capacity *resource.Quantity
	time                time.Time
}

type observations map[Signal]observation

// observe derives the signals from a stats summary, as upstream: memory from the node's
// (available + working set is the capacity), allocatable memory from the pods' system
// container, the filesystems from the node's and the runtime's image filesystem, PIDs
// from the node's rlimit.
func observe(sum *statsapi.Summary) observations {
	obs := observations{}
	bytes := func(n uint64) *resource.Quantity { return resource.NewQuantity(int64(n), resource.BinarySI) }
	count := func(n uint64) *resource.Quantity { return resource.NewQuantity(int64(n), resource.DecimalSI) }
	if m := sum.Node.Memory; m != nil && m.AvailableBytes != nil && m.WorkingSetBytes != nil {
		obs[SignalMemoryAvailable] = observation{bytes(*m.AvailableBytes), bytes(*m.AvailableBytes + *m.WorkingSetBytes), m.Time.Time}
	}
	for _, c := range sum.Node.SystemContainers {
		if m := c.Memory; c.Name == statsapi.SystemContainerPods && m != nil && m.AvailableBytes != nil && m.WorkingSetBytes != nil {
			obs[SignalAllocatableMemoryAvailable] = observation{bytes(*m.AvailableBytes), bytes(*m.AvailableBytes + *m.WorkingSetBytes), m.Time.Time}
		}
	}
	fs := func(f *statsapi.FsStats, avail, inodes Signal) {
		if f == nil {
			return
		}
		if f.AvailableBytes != nil && f.CapacityBytes != nil {
			obs[avail] = observation{bytes(*f.AvailableBytes), bytes(*f.CapacityBytes), f.Time.Time}
		}
		if f.InodesFree != nil && f.Inodes != nil {
			obs[inodes] = observation{count(*f.InodesFree), count(*f.Inodes), f.Time.Time}
		}
	}
	fs(sum.Node.Fs, SignalNodeFsAvailable, SignalNodeFsInodesFree)
	if sum.Node.Runtime != nil {
		fs(sum.Node.Runtime.ImageFs, SignalImageFsAvailable, SignalImageFsInodesFree)
	}
	if r := sum.Node.Rlimit; r != nil && r.MaxPID != nil && r.NumOfRunningProcesses != nil {
		obs[SignalPIDAvailable] = observation{resource.NewQuantity(*r.MaxPID-int64(*r.NumOfRunningProcesses), resource.DecimalSI), count(uint64(*r.MaxPID)), r.Time.Time}
	}
	return obs
}

// met returns the thresholds (indexes into ts) whose signal is below their value; with
// minReclaim, below value plus the minimum reclaim (a met threshold stays met until that
// much is free again). A signal without an observation meets nothing.
func met(ts []Threshold, idx []int, obs observations, minReclaim bool) []int {
	var out []int
	for _, i := range idx {
		t := ts[i]
		o, ok := obs[t.Signal]
		if !ok {
			continue
		}
		q := t.Value.Of(o.capacity)
		if minReclaim && t.MinReclaim != nil {
			q.Add(*t.MinReclaim.Of(o.capacity))
		}
		if q.Cmp(*o.available) > 0 {
			out = append(out, i)
		}
	}
	return out
}

// every is the indexes of all of ts.
func every(ts []Threshold) []int {
	out := make([]int, len(ts))
	for i := range out {
		out[i] = i
	}
	return out
}

// tracker is what the manager remembers between rounds: when each threshold was first
// met, when each condition was last observed, the thresholds met last round and the
// observations they were met on.
type tracker struct {
	firstMet     map[int]time.Time
	lastObserved map[v1.NodeConditionType]time.Time
	met          []int
	last         observations
	conditions   []v1.NodeConditionType
}

// step is one round of upstream's synchronize bookkeeping. It returns the thresholds to
// act on: met now (or met before and not yet relieved by their minimum reclaim), past
// their grace period, and measured anew since the last round. The node conditions are
// those of met thresholds, kept for the transition period after they were last met.
func (t *tracker) step(ts []Threshold, obs observations, now time.Time, transition time.Duration) []int {
	cur := met(ts, every(ts), obs, false)
	for _, i := range met(ts, t.met, obs, true) {
		if !slices.Contains(cur, i) {
			cur = append(cur, i)
		}
	}
	first := map[int]time.Time{}
	for _, i := range cur {
		if at, ok := t.firstMet[i]; ok {
			first[i] = at
		} else {
			first[i] = now
		}
	}
	last := map[v1.NodeConditionType]time.Time{}
	for c, at := range t.lastObserved {
		last[c] = at
	}
	for _, i := range cur {
		if c, ok := signalCondition[ts[i].Signal]; ok {
			last[c] = now
		}
	}
	var conds []v1.NodeConditionType
	for c, at := range last {
		if now.Sub(at) < transition {
			conds = append(conds, c)
		}
	}
	slices.Sort(conds)
	var graced []int
	for _, i := range cur {
		if now.Sub(first[i]) >= ts[i].GracePeriod {
			graced = append(graced, i)
		}
	}
	t.firstMet, t.lastObserved, t.conditions, t.met = first, last, conds, graced
	var fresh []int
	for _, i := range graced {
		o := obs[ts[i].Signal]
		prev, ok := t.last[ts[i].Signal]
		if !ok || o.time.IsZero() || o.time.After(prev.time) {
			fresh = append(fresh, i)
		}
	}
	t.last = obs
	return fresh
}

// byPriority orders thresholds to reclaim: memory first (upstream's byEvictionPriority).
func byPriority(ts []Threshold, idx []int) []int {
	out := slices.Clone(idx)
	isMem := func(i int) bool {
		return ts[i].Signal == SignalMemoryAvailable || ts[i].Signal == SignalAllocatableMemoryAvailable
	}
	slices.SortStableFunc(out, func(a, b int) int {
		switch {
		case isMem(a) && !isMem(b):
			return -1
		case isMem(b) && !isMem(a):
			return 1
		}
		return 0
	})
	return out
}
