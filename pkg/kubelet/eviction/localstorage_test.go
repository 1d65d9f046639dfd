package eviction

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

func TestOverLocalLimit(t *testing.T) {
	limited := func(limit string) *v1.Pod {
		p := makePod(podSpec{name: "p"})
		p.Spec.Containers[0].Resources.Limits[v1.ResourceEphemeralStorage] = resource.MustParse(limit)
		return p
	}
	stats := func(rootfs, logs, total uint64) statsapi.PodStats {
		return statsapi.PodStats{
			Containers:       []statsapi.ContainerStats{{Name: "c", Rootfs: &statsapi.FsStats{UsedBytes: u64(rootfs)}, Logs: &statsapi.FsStats{UsedBytes: u64(logs)}}},
			EphemeralStorage: &statsapi.FsStats{UsedBytes: u64(total)},
		}
	}
	memDir := makePod(podSpec{name: "m", sizeLimit: "1Mi"})
	memDir.Spec.Volumes[0].EmptyDir.Medium = v1.StorageMediumMemory
	memStats := podStats(podSpec{name: "m", emptyDir: 5 << 20}, metaNow())
	for _, tc := range []struct {
		name       string
		pod        *v1.Pod
		ps         statsapi.PodStats
		dedicated  bool
		msg, label string
	}{
		{"within", limited("10Mi"), stats(1<<20, 1<<20, 3<<20), false, "", ""},
		{"pod total over the containers' limits", limited("10Mi"), stats(1<<20, 1<<20, 11<<20), false,
			"Pod ephemeral local storage usage exceeds the total limit of containers 10Mi. ", "ephemeralpodfs.limit"},
		// The pod check counts volumes too; the container's own only its layer and logs.
		{"container layer and logs over its limit", limited("10Mi"), stats(9<<20, 2<<20, 9<<20), false,
			`Container c exceeded its local ephemeral storage limit "10Mi". `, "ephemeralcontainerfs.limit"},
		{"layer not counted on a dedicated image filesystem", limited("10Mi"), stats(9<<20, 2<<20, 9<<20), true, "", ""},
		{"memory-backed emptyDir is the kernel's to bound", memDir, memStats, false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, label := overLocalLimit(tc.pod, tc.ps, tc.dedicated)
			if msg != tc.msg || label != tc.label {
				t.Errorf("got %q (%s), want %q (%s)", msg, label, tc.msg, tc.label)
			}
		})
	}
}

func TestRankDiskAndPIDs(t *testing.T) {
	pods := []*v1.Pod{makePod(podSpec{name: "small", emptyDir: 1 << 20}), makePod(podSpec{name: "big", emptyDir: 9 << 20}),
		makePod(podSpec{name: "nostats"})}
	sum := &statsapi.Summary{}
	for _, s := range []podSpec{{name: "small", emptyDir: 1 << 20}, {name: "big", emptyDir: 9 << 20}} {
		sum.Pods = append(sum.Pods, podStats(s, metaNow()))
	}
	rankFor(SignalNodeFsAvailable, true)(pods, podStatsByUID(sum))
	if got := []string{pods[0].Name, pods[1].Name, pods[2].Name}; got[0] != "nostats" || got[1] != "big" || got[2] != "small" {
		t.Errorf("disk ranking %v, want pods without stats first, then by usage", got)
	}
	// PIDs: by priority first.
	high := makePod(podSpec{name: "high", priority: 10})
	low := makePod(podSpec{name: "low"})
	pp := []*v1.Pod{high, low}
	rankFor(SignalPIDAvailable, false)(pp, podStatsByUID(&statsapi.Summary{Pods: []statsapi.PodStats{
		podStats(podSpec{name: "high"}, metaNow()), podStats(podSpec{name: "low"}, metaNow())}}))
	if pp[0].Name != "low" {
		t.Errorf("PID ranking %s first, want the lower priority", pp[0].Name)
	}
}
