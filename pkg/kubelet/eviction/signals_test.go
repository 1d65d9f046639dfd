package eviction

import (
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

func u64(n uint64) *uint64 { return &n }

func TestObserve(t *testing.T) {
	now := metav1.Now()
	maxPID, procs := int64(1000), int64(100)
	sum := &statsapi.Summary{Node: statsapi.NodeStats{
		Memory: &statsapi.MemoryStats{Time: now, AvailableBytes: u64(300), WorkingSetBytes: u64(700)},
		SystemContainers: []statsapi.ContainerStats{{Name: statsapi.SystemContainerPods,
			Memory: &statsapi.MemoryStats{Time: now, AvailableBytes: u64(50), WorkingSetBytes: u64(450)}}},
		Fs:      &statsapi.FsStats{Time: now, AvailableBytes: u64(10), CapacityBytes: u64(100), InodesFree: u64(5), Inodes: u64(50)},
		Runtime: &statsapi.RuntimeStats{ImageFs: &statsapi.FsStats{Time: now, AvailableBytes: u64(20), CapacityBytes: u64(200)}},
		Rlimit:  &statsapi.RlimitStats{Time: now, MaxPID: &maxPID, NumOfRunningProcesses: &procs},
	}}
	obs := observe(sum)
	want := map[Signal][2]int64{
		SignalMemoryAvailable: {300, 1000}, SignalAllocatableMemoryAvailable: {50, 500},
		SignalNodeFsAvailable: {10, 100}, SignalNodeFsInodesFree: {5, 50}, SignalImageFsAvailable: {20, 200},
		SignalPIDAvailable: {900, 1000},
	}
	if len(obs) != len(want) {
		t.Fatalf("observed %d signals, want %d: %v", len(obs), len(want), obs)
	}
	for sig, w := range want {
		o := obs[sig]
		if o.available.Value() != w[0] || o.capacity.Value() != w[1] {
			t.Errorf("%s = %v of %v, want %d of %d", sig, o.available, o.capacity, w[0], w[1])
		}
	}
}

func TestTrackerStep(t *testing.T) {
	hard := Threshold{Signal: SignalMemoryAvailable, Value: Value{Quantity: q("1Gi")}, MinReclaim: &Value{Quantity: q("500Mi")}}
	soft := Threshold{Signal: SignalNodeFsAvailable, Value: Value{Percentage: 0.5}, GracePeriod: time.Minute}
	ts := []Threshold{hard, soft}
	t0 := time.Unix(1000, 0)
	var tr tracker
	step := func(at time.Duration, mem, disk string) []int {
		obs := obsOf(SignalMemoryAvailable, mem, "8Gi")
		obs[SignalNodeFsAvailable] = observation{available: q(disk), capacity: q("100Gi"), time: t0.Add(at)}
		o := obs[SignalMemoryAvailable]
		o.time = t0.Add(at)
		obs[SignalMemoryAvailable] = o
		return tr.step(ts, obs, t0.Add(at), 5*time.Minute)
	}
	steps := []struct {
		at        time.Duration
		mem, disk string
		act       []int
		conds     []v1.NodeConditionType
	}{
		{0, "2Gi", "60Gi", nil, nil},
		// memory below 1Gi: met at once (hard); MemoryPressure.
		{10 * time.Second, "900Mi", "60Gi", []int{0}, []v1.NodeConditionType{v1.NodeMemoryPressure}},
		// 1.2Gi free: above the threshold but not above threshold + minimum reclaim.
		{20 * time.Second, "1.2Gi", "60Gi", []int{0}, []v1.NodeConditionType{v1.NodeMemoryPressure}},
		// resolved; the condition stays for the transition period. Disk met, grace not over.
		{30 * time.Second, "2Gi", "40Gi", nil, []v1.NodeConditionType{v1.NodeDiskPressure, v1.NodeMemoryPressure}},
		{80 * time.Second, "2Gi", "40Gi", nil, []v1.NodeConditionType{v1.NodeDiskPressure, v1.NodeMemoryPressure}},
		// disk met for a minute: acted on.
		{90 * time.Second, "2Gi", "40Gi", []int{1}, []v1.NodeConditionType{v1.NodeDiskPressure, v1.NodeMemoryPressure}},
		// disk resolved (no minimum reclaim); memory condition ends 5 minutes after 20s.
		{321 * time.Second, "2Gi", "60Gi", nil, []v1.NodeConditionType{v1.NodeDiskPressure}},
		{391 * time.Second, "2Gi", "60Gi", nil, nil},
	}
	for _, s := range steps {
		act := step(s.at, s.mem, s.disk)
		if !slices.Equal(act, s.act) {
			t.Errorf("at %v: act %v, want %v", s.at, act, s.act)
		}
		if !slices.Equal(tr.conditions, s.conds) {
			t.Errorf("at %v: conditions %v, want %v", s.at, tr.conditions, s.conds)
		}
	}
}

func TestTrackerStaleStats(t *testing.T) {
	ts := []Threshold{{Signal: SignalMemoryAvailable, Value: Value{Quantity: q("1Gi")}}}
	var tr tracker
	obs := obsOf(SignalMemoryAvailable, "500Mi", "8Gi")
	if act := tr.step(ts, obs, time.Unix(10, 0), time.Minute); len(act) != 1 {
		t.Fatalf("first round: act %v", act)
	}
	// The same measurement again: met, but not acted on twice.
	if act := tr.step(ts, obs, time.Unix(20, 0), time.Minute); len(act) != 0 {
		t.Fatalf("stale stats acted on: %v", act)
	}
}

func TestByPriority(t *testing.T) {
	ts := []Threshold{{Signal: SignalNodeFsAvailable}, {Signal: SignalPIDAvailable}, {Signal: SignalMemoryAvailable}}
	if got := byPriority(ts, []int{0, 1, 2}); got[0] != 2 {
		t.Errorf("memory not first: %v", got)
	}
}

func metaNow() metav1.Time { return metav1.NewTime(time.Unix(1, 0)) }
