package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// cgroupFile reads a cgroup v1 file of controller ctrl.
func cgroupFile(t *testing.T, ctrl, cg, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctrl, cg, file))
	if err != nil {
		t.Errorf("%v", err)
		return ""
	}
	return strings.TrimSpace(string(b))
}

// startCgroupNode starts node name (either agent) with a cgroup root of the test's own,
// which the test's end removes: the upstream kubelet needs the root to exist, and both
// agents' QoS cgroups under it are then this node's only. flags are for both agents.
func startCgroupNode(t *testing.T, name, root string, flags ...string) *testbed.Kubelet {
	t.Helper()
	if _, err := testbed.MakeCgroup(root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testbed.RemoveCgroupEverywhere(root) })
	var (
		k   *testbed.Kubelet
		err error
	)
	if upstream {
		k, err = bed.StartUpstreamKubeletWith(name, testbed.UpstreamOptions{CgroupRoot: root, Flags: flags})
	} else {
		k, err = bed.StartMinikubelet(name, append([]string{"--cgroup-root=" + root}, flags...)...)
	}
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// cgroupFileCheck is one cgroup v1 file's expected value.
type cgroupFileCheck struct{ ctrl, cg, file, want string }

// checkCgroupFiles reads each file, logs it and compares it with its expected value.
func checkCgroupFiles(t *testing.T, checks []cgroupFileCheck) {
	t.Helper()
	for _, c := range checks {
		got := cgroupFile(t, c.ctrl, c.cg, c.file)
		t.Logf("cgroup %s/%s = %s", c.cg, c.file, got)
		if got != c.want {
			t.Errorf("%s/%s = %s, want %s", c.cg, c.file, got, c.want)
		}
	}
}

// pidCapacity is the machine's PID capacity as the kubelet counts it.
func pidCapacity(t *testing.T) string {
	var min int64
	for _, f := range []string{"/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if min == 0 || n < min {
			min = n
		}
	}
	return strconv.FormatInt(min, 10)
}

// TestResourcesCgroups: the node's cgroup tree as upstream's container manager makes it,
// under a cgroup root of the test's own, with podPidsLimit 64 (cgroupfs, cgroup v1). The
// node allocatable cgroup (kubepods) holds the node's CPUs as shares, its memory and PIDs;
// burstable the Burstable pods' summed CPU requests as shares, besteffort the minimum; a
// Guaranteed, a Burstable and a BestEffort pod each get their cgroup with upstream's
// values and the PID limit, their containers upstream's oom_score_adj; a fork bomb in a pod stops at the limit and the node stays
// Ready. The same checks pass on the pinned upstream kubelet (make test-upstream).
func TestResourcesCgroups(t *testing.T) {
	ctx := ctxFor(t, 4*time.Minute)
	const root = "/mkl-e2e-cgroups"
	k := startCgroupNode(t, "cg", root, "--pod-max-pids=64")
	stopWhenDone(t, k)
	node := watchNode(ctx, t, k.NodeName, isReady)

	guaranteed := newPod(k.NodeName, "sleep", "3600")
	guaranteed.Spec.Containers[0].Resources = cpuMemResources("200m", "64Mi", "200m", "64Mi")
	burstable := newPod(k.NodeName, "sleep", "3600")
	burstable.Spec.Containers[0].Resources = cpuMemResources("100m", "32Mi", "", "64Mi")
	// BestEffort, and a fork bomb: 200 sleeps against a limit of 64 processes. The inner
	// shell gives up at its first failed fork; its sleeps stay (with the container's init,
	// which then says so and becomes a sleep itself).
	bomb := newPod(k.NodeName, "sh", "-c", `sh -c 'i=0; while [ $i -lt 200 ]; do sleep 600 & i=$((i+1)); done'; echo bomb stopped; exec sleep 3600`)
	var pods []*v1.Pod
	for _, p := range []*v1.Pod{guaranteed, burstable, bomb} {
		pods = append(pods, createPod(ctx, t, p))
	}
	for i, p := range pods {
		pods[i] = watchPod(ctx, t, p, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	}
	g, b, be := pods[0], pods[1], pods[2]
	if g.Status.QOSClass != v1.PodQOSGuaranteed || b.Status.QOSClass != v1.PodQOSBurstable || be.Status.QOSClass != v1.PodQOSBestEffort {
		t.Fatalf("QoS classes %s %s %s", g.Status.QOSClass, b.Status.QOSClass, be.Status.QOSClass)
	}

	kubepods := root + "/kubepods"
	memCap := node.Status.Capacity.Memory().Value()
	for _, c := range []struct{ ctrl, cg, file, want string }{
		{"cpu", kubepods, "cpu.shares", strconv.Itoa(runtime.NumCPU() * 1024)},
		{"memory", kubepods, "memory.limit_in_bytes", strconv.FormatInt(memCap-memCap%4096, 10)},
		{"pids", kubepods, "pids.max", pidCapacity(t)},
		{"cpu", kubepods + "/burstable", "cpu.shares", "102"},
		{"cpu", kubepods + "/besteffort", "cpu.shares", "2"},
		{"cpu", kubepods + "/pod" + string(g.UID), "cpu.shares", "204"},
		{"cpu", kubepods + "/pod" + string(g.UID), "cpu.cfs_quota_us", "20000"},
		{"cpu", kubepods + "/pod" + string(g.UID), "cpu.cfs_period_us", "100000"},
		{"memory", kubepods + "/pod" + string(g.UID), "memory.limit_in_bytes", "67108864"},
		{"pids", kubepods + "/pod" + string(g.UID), "pids.max", "64"},
		{"cpu", kubepods + "/burstable/pod" + string(b.UID), "cpu.shares", "102"},
		{"cpu", kubepods + "/burstable/pod" + string(b.UID), "cpu.cfs_quota_us", "-1"},
		{"memory", kubepods + "/burstable/pod" + string(b.UID), "memory.limit_in_bytes", "67108864"},
		{"pids", kubepods + "/burstable/pod" + string(b.UID), "pids.max", "64"},
		{"cpu", kubepods + "/besteffort/pod" + string(be.UID), "cpu.shares", "2"},
		{"memory", kubepods + "/besteffort/pod" + string(be.UID), "memory.limit_in_bytes", "9223372036854771712"},
		{"pids", kubepods + "/besteffort/pod" + string(be.UID), "pids.max", "64"},
	} {
		if got := cgroupFile(t, c.ctrl, c.cg, c.file); got != c.want {
			t.Errorf("%s/%s = %s, want %s", c.cg, c.file, got, c.want)
		}
	}

	// oom_score_adj by QoS (upstream's -997 for Guaranteed is clamped by containerd
	// here): BestEffort 1000, Burstable 1000 less its memory request's thousandths of
	// the machine.
	for _, c := range []struct {
		pod  *v1.Pod
		cg   string
		want int64
	}{
		{be, kubepods + "/besteffort/pod" + string(be.UID), 1000},
		{b, kubepods + "/burstable/pod" + string(b.UID), 1000 - 1000*(32<<20)/memCap},
	} {
		procs := strings.Fields(cgroupFile(t, "pids", c.cg+"/"+containerID(c.pod, "main"), "cgroup.procs"))
		if len(procs) == 0 {
			t.Errorf("no process in %s's container cgroup", c.pod.Name)
			continue
		}
		if got, _ := os.ReadFile("/proc/" + procs[0] + "/oom_score_adj"); strings.TrimSpace(string(got)) != strconv.FormatInt(c.want, 10) {
			t.Errorf("%s (%s): oom_score_adj %q, want %d", c.pod.Name, c.pod.Status.QOSClass, strings.TrimSpace(string(got)), c.want)
		}
	}

	// The fork bomb is held at the pod's limit; the node and the other pods carry on.
	bombCg := kubepods + "/besteffort/pod" + string(be.UID)
	// The fork that failed is counted in the forking container's cgroup (pids.events) on
	// this kernel; the pod's cgroup holds the processes: the limit, less the shell that
	// gave up.
	watchUntilPoll(ctx, t, "the fork bomb's pod at its PID limit", func() (bool, string) {
		cur, _ := strconv.Atoi(cgroupFile(t, "pids", bombCg, "pids.current"))
		logs, _ := podLogs(ctx, be, &v1.PodLogOptions{})
		return cur >= 60 && cur <= 64 && strings.Contains(logs, "can't fork") && strings.Contains(logs, "bomb stopped"),
			fmt.Sprintf("pids.current %d, log %q", cur, logs)
	})
	after := createPod(ctx, t, newPod(k.NodeName, "sleep", "3600"))
	watchPod(ctx, t, after, "Running beside the fork bomb", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	watchNode(ctx, t, k.NodeName, isReady)
	if n, err := bed.Client.CoreV1().Nodes().Get(ctx, k.NodeName, metav1.GetOptions{}); err == nil {
		for _, c := range n.Status.Conditions {
			if c.Type == v1.NodePIDPressure && c.Status != v1.ConditionFalse {
				t.Errorf("PIDPressure %s: %s", c.Status, c.Message)
			}
		}
	}
}
