package cm

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func rl(kv ...string) v1.ResourceList {
	out := v1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func ctr(req, lim v1.ResourceList) v1.Container {
	return v1.Container{Name: "c", Resources: v1.ResourceRequirements{Requests: req, Limits: lim}}
}

func pod(cs ...v1.Container) *v1.Pod {
	return &v1.Pod{Spec: v1.PodSpec{Containers: cs}}
}

// show prints a Config as the cgroup files would hold it ("-" for a field left alone).
func show(c Config) string {
	f := func(p any) string {
		switch v := p.(type) {
		case *uint64:
			if v != nil {
				return fmt.Sprint(*v)
			}
		case *int64:
			if v != nil {
				return fmt.Sprint(*v)
			}
		}
		return "-"
	}
	s := fmt.Sprintf("shares=%s quota=%s period=%s memory=%s pids=%s", f(c.CPUShares), f(c.CPUQuota), f(c.CPUPeriod), f(c.Memory), f(c.PidsLimit))
	if c.HugePageLimit != nil {
		s += fmt.Sprintf(" hugetlb=%v", c.HugePageLimit)
	}
	return s
}

// TestForPod: the pod cgroup's values as upstream's ResourceConfigForPod gives them.
func TestForPod(t *testing.T) {
	withInit := pod(ctr(rl("cpu", "100m", "memory", "64Mi"), rl("cpu", "100m", "memory", "64Mi")))
	withInit.Spec.InitContainers = []v1.Container{ctr(rl("cpu", "500m", "memory", "32Mi"), rl("cpu", "500m", "memory", "32Mi"))}
	overhead := pod(ctr(rl("cpu", "200m", "memory", "100Mi"), rl("cpu", "200m", "memory", "100Mi")))
	overhead.Spec.Overhead = rl("cpu", "50m", "memory", "10Mi")
	podLevel := pod(ctr(rl("cpu", "100m"), nil))
	podLevel.Spec.Resources = &v1.ResourceRequirements{Requests: rl("cpu", "300m"), Limits: rl("cpu", "1", "memory", "128Mi")}
	huge := pod(ctr(rl("cpu", "100m", "memory", "64Mi", "hugepages-2Mi", "4Mi"), rl("cpu", "100m", "memory", "64Mi", "hugepages-2Mi", "4Mi")))
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		o    PodOptions
		want string
	}{
		{"guaranteed", pod(ctr(rl("cpu", "200m", "memory", "64Mi"), rl("cpu", "200m", "memory", "64Mi"))), PodOptions{EnforceCPULimits: true},
			"shares=204 quota=20000 period=100000 memory=67108864 pids=-"},
		{"guaranteed, quota off", pod(ctr(rl("cpu", "200m", "memory", "64Mi"), rl("cpu", "200m", "memory", "64Mi"))), PodOptions{},
			"shares=204 quota=-1 period=100000 memory=67108864 pids=-"},
		{"burstable with every limit", pod(ctr(rl("cpu", "100m", "memory", "32Mi"), rl("cpu", "300m", "memory", "64Mi"))), PodOptions{EnforceCPULimits: true},
			"shares=102 quota=30000 period=100000 memory=67108864 pids=-"},
		{"burstable, requests only", pod(ctr(rl("cpu", "250m"), nil)), PodOptions{EnforceCPULimits: true},
			"shares=256 quota=- period=- memory=- pids=-"},
		{"burstable, a container without limits", pod(ctr(rl("cpu", "100m", "memory", "32Mi"), rl("cpu", "100m", "memory", "64Mi")), ctr(rl("cpu", "100m"), nil)), PodOptions{EnforceCPULimits: true},
			"shares=204 quota=- period=- memory=- pids=-"},
		{"besteffort with a PID limit", pod(ctr(nil, nil)), PodOptions{EnforceCPULimits: true, PidsLimit: 64},
			"shares=2 quota=- period=- memory=- pids=64"},
		{"init container's larger request counts", withInit, PodOptions{EnforceCPULimits: true},
			"shares=512 quota=50000 period=100000 memory=67108864 pids=-"},
		{"overhead", overhead, PodOptions{EnforceCPULimits: true},
			"shares=256 quota=25000 period=100000 memory=115343360 pids=-"},
		{"pod-level resources", podLevel, PodOptions{EnforceCPULimits: true},
			"shares=307 quota=100000 period=100000 memory=134217728 pids=-"},
		{"tiny CPU limit floored", pod(ctr(rl("cpu", "1m", "memory", "8Mi"), rl("cpu", "1m", "memory", "8Mi"))), PodOptions{EnforceCPULimits: true},
			"shares=2 quota=1000 period=100000 memory=8388608 pids=-"},
		{"huge pages", huge, PodOptions{EnforceCPULimits: true, HugePageSizes: []string{"2MB", "1GB"}},
			"shares=102 quota=10000 period=100000 memory=67108864 pids=- hugetlb=map[1GB:0 2MB:4194304]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := show(ForPod(tc.pod, tc.o)); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestForQOS: burstable's shares sum the Burstable pods' CPU requests, besteffort keeps
// the minimum, huge pages are unlimited in both.
func TestForQOS(t *testing.T) {
	pods := []*v1.Pod{
		pod(ctr(rl("cpu", "100m"), nil)),
		pod(ctr(rl("cpu", "400m", "memory", "1Mi"), rl("memory", "2Mi"))),
		pod(ctr(rl("cpu", "1", "memory", "1Mi"), rl("cpu", "1", "memory", "1Mi"))), // Guaranteed: not counted
		pod(ctr(nil, nil)),
	}
	b, be := ForQOS(pods, []string{"2MB"})
	if got, want := show(b), "shares=512 quota=- period=- memory=- pids=- hugetlb=map[2MB:9223372036854775807]"; got != want {
		t.Errorf("burstable %s, want %s", got, want)
	}
	if got, want := show(be), "shares=2 quota=- period=- memory=- pids=- hugetlb=map[2MB:9223372036854775807]"; got != want {
		t.Errorf("besteffort %s, want %s", got, want)
	}
	if b, _ := ForQOS(nil, nil); show(b) != "shares=2 quota=- period=- memory=- pids=-" {
		t.Errorf("no pods: burstable %s", show(b))
	}
}

// TestNodeAllocatable: the kubepods cgroup's limits are capacity less the reservations
// when pods are enforced, else the capacity.
func TestNodeAllocatable(t *testing.T) {
	capacity := rl("cpu", "2", "memory", "4Gi", "pods", "110", "ephemeral-storage", "10Gi", "hugepages-2Mi", "0")
	reserved := rl("cpu", "500m", "memory", "1Gi", "ephemeral-storage", "1Gi")
	if got, want := show(ForNode(NodeAllocatable(capacity, reserved, 4194304, true))), "shares=1536 quota=- period=- memory=3221225472 pids=4194304 hugetlb=map[2MB:0]"; got != want {
		t.Errorf("enforced: %s, want %s", got, want)
	}
	if got, want := show(ForNode(NodeAllocatable(capacity, reserved, 0, false))), "shares=2048 quota=- period=- memory=4294967296 pids=- hugetlb=map[2MB:0]"; got != want {
		t.Errorf("not enforced: %s, want %s", got, want)
	}
	if got := NodeAllocatable(rl("cpu", "1"), rl("cpu", "2"), 0, true); !got.Cpu().IsZero() {
		t.Errorf("reservation above capacity: cpu %v, want 0", got.Cpu())
	}
}

func TestMilliCPUConversions(t *testing.T) {
	for _, tc := range []struct {
		milli  int64
		shares uint64
		quota  int64
	}{{0, 2, 0}, {1, 2, 1000}, {10, 10, 1000}, {100, 102, 10000}, {1000, 1024, 100000}, {300000, 262144, 30000000}} {
		if got := MilliCPUToShares(tc.milli); got != tc.shares {
			t.Errorf("shares(%d) = %d, want %d", tc.milli, got, tc.shares)
		}
		if got := MilliCPUToQuota(tc.milli, DefaultCPUPeriod); got != tc.quota {
			t.Errorf("quota(%d) = %d, want %d", tc.milli, got, tc.quota)
		}
	}
}
