package stats

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/cri/critesting"
)

// states is a runtime state cache as a map.
type states map[types.UID]*cri.PodState

func (s states) Get(_ context.Context, uid types.UID) (*cri.PodState, error) {
	if st, ok := s[uid]; ok {
		return st, nil
	}
	return nil, errors.New("no such pod")
}

var t0 = time.Unix(1_700_000_000, 0)

func uv(v uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: v} }

// fixture is one node with pods as the fake runtime and state cache have them.
type fixture struct {
	rt    *critest.FakeRuntimeService
	img   *critest.FakeImageService
	state states
	pods  []*v1.Pod
	root  string
}

func newFixture(t *testing.T) *fixture {
	return &fixture{rt: critest.NewFakeRuntimeService(), img: critest.NewFakeImageService(), state: states{}, root: t.TempDir()}
}

func nodeLabels(uid, name string) map[string]string {
	return map[string]string{cri.LabelNode: "n1", cri.LabelPodUID: uid, cri.LabelPodName: name, cri.LabelPodNamespace: "ns"}
}

// addPod adds a pod with a ready sandbox (with pod-level stats unless podStats is nil).
func (f *fixture) addPod(uid, name string, podStats *runtimeapi.LinuxPodSandboxStats) *v1.Pod {
	sb := "sb-" + uid
	f.rt.Sandboxes[sb] = &critest.FakePodSandbox{PodSandboxStatus: runtimeapi.PodSandboxStatus{Id: sb, Labels: nodeLabels(uid, name)}}
	if podStats != nil {
		f.rt.FakePodSandboxStats[sb] = &runtimeapi.PodSandboxStats{Attributes: &runtimeapi.PodSandboxAttributes{Id: sb,
			Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "ns", Uid: uid}, Labels: nodeLabels(uid, name)}, Linux: podStats}
	}
	f.state[types.UID(uid)] = &cri.PodState{UID: types.UID(uid), Sandboxes: []cri.Sandbox{{ID: sb, Ready: true, CreatedAt: t0}}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(uid)}}
	f.pods = append(f.pods, pod)
	return pod
}

// addContainer adds a container to the runtime (with stats unless st is nil) and to the
// state cache unless gone (a container removed between the list and the stats).
func (f *fixture) addContainer(uid, id, name string, state cri.ContainerState, created time.Time, st *runtimeapi.ContainerStats, gone bool) {
	l := nodeLabels(uid, f.state[types.UID(uid)].Sandboxes[0].ID)
	l[cri.LabelPodName] = ""
	for _, p := range f.pods {
		if string(p.UID) == uid {
			l[cri.LabelPodName] = p.Name
		}
	}
	f.rt.Containers[id] = &critest.FakeContainer{ContainerStatus: runtimeapi.ContainerStatus{Id: id, Labels: l}, SandboxID: "sb-" + uid}
	if st != nil {
		st.Attributes = &runtimeapi.ContainerAttributes{Id: id, Metadata: &runtimeapi.ContainerMetadata{Name: name}, Labels: l}
		f.rt.FakeContainerStats[id] = st
	}
	if !gone {
		ps := f.state[types.UID(uid)]
		ps.Containers = append(ps.Containers, cri.Container{ID: id, Name: name, State: state, CreatedAt: created, Image: "busybox:1"})
	}
}

func (f *fixture) provider(t *testing.T) *Provider {
	t.Helper()
	if f.rt.FakeContainerStats == nil {
		f.rt.FakeContainerStats = map[string]*runtimeapi.ContainerStats{}
	}
	p, err := New(Config{Runtime: critesting.NewFake(f.rt, f.img), State: f.state, Pods: func() []*v1.Pod { return f.pods },
		NodeName: "n1", RootDir: f.root, PodLogsDir: filepath.Join(f.root, "logs"), VolumeStatsAggPeriod: time.Minute,
		ProcRoot: fakeProc(t), CgroupFS: fakeCgroupV1(t), CgroupsPerQOS: true})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ctrStats(cpuNs, ws uint64, at int64) *runtimeapi.ContainerStats {
	return &runtimeapi.ContainerStats{
		Cpu:    &runtimeapi.CpuUsage{Timestamp: at, UsageCoreNanoSeconds: uv(cpuNs)},
		Memory: &runtimeapi.MemoryUsage{Timestamp: at, WorkingSetBytes: uv(ws), UsageBytes: uv(ws + 10), RssBytes: uv(ws / 2)},
	}
}

func podOf(t *testing.T, s *statsapi.Summary, name string) *statsapi.PodStats {
	t.Helper()
	for i := range s.Pods {
		if s.Pods[i].PodRef.Name == name {
			return &s.Pods[i]
		}
	}
	t.Fatalf("no pod %s in %+v", name, s.Pods)
	return nil
}

func TestSummaryPods(t *testing.T) {
	at := t0.UnixNano()
	for _, tc := range []struct {
		name  string
		setup func(f *fixture)
		check func(t *testing.T, s *statsapi.Summary)
	}{{
		name: "pod figures from the sandbox, containers from their stats",
		setup: func(f *fixture) {
			f.addPod("u1", "web", &runtimeapi.LinuxPodSandboxStats{
				Cpu:    &runtimeapi.CpuUsage{Timestamp: at, UsageCoreNanoSeconds: uv(500), UsageNanoCores: uv(7)},
				Memory: &runtimeapi.MemoryUsage{Timestamp: at, WorkingSetBytes: uv(3000)},
				Network: &runtimeapi.NetworkUsage{Timestamp: at, DefaultInterface: &runtimeapi.NetworkInterfaceUsage{Name: "eth0",
					RxBytes: uv(11), TxBytes: uv(22)}},
			})
			f.addContainer("u1", "a", "app", cri.StateRunning, t0, ctrStats(100, 1000, at), false)
		},
		check: func(t *testing.T, s *statsapi.Summary) {
			p := podOf(t, s, "web")
			if *p.CPU.UsageNanoCores != 7 || *p.CPU.UsageCoreNanoSeconds != 500 || *p.Memory.WorkingSetBytes != 3000 {
				t.Errorf("pod cpu %+v memory %+v", p.CPU, p.Memory)
			}
			if p.Network == nil || p.Network.Name != "eth0" || *p.Network.RxBytes != 11 || len(p.Network.Interfaces) != 1 {
				t.Errorf("pod network %+v", p.Network)
			}
			if len(p.Containers) != 1 || p.Containers[0].Name != "app" || *p.Containers[0].Memory.RSSBytes != 500 ||
				!p.Containers[0].StartTime.Equal(&metav1.Time{Time: t0}) || p.Containers[0].Swap == nil {
				t.Errorf("containers %+v", p.Containers)
			}
			if !p.StartTime.Time.Equal(t0) || p.PodRef.UID != "u1" || p.PodRef.Namespace != "ns" {
				t.Errorf("pod ref %+v start %v", p.PodRef, p.StartTime)
			}
		},
	}, {
		name: "no pod-level stats: summed from the containers",
		setup: func(f *fixture) {
			f.addPod("u1", "web", nil)
			f.addContainer("u1", "a", "app", cri.StateRunning, t0, ctrStats(100, 1000, at), false)
			f.addContainer("u1", "b", "side", cri.StateRunning, t0, ctrStats(50, 500, at), false)
		},
		check: func(t *testing.T, s *statsapi.Summary) {
			p := podOf(t, s, "web")
			if *p.CPU.UsageCoreNanoSeconds != 150 || *p.Memory.WorkingSetBytes != 1500 || p.Network != nil {
				t.Errorf("pod cpu %+v memory %+v network %+v", p.CPU, p.Memory, p.Network)
			}
		},
	}, {
		name: "torn down: a container gone from the cache, and one without figures",
		setup: func(f *fixture) {
			f.addPod("u1", "web", nil)
			f.addContainer("u1", "a", "app", cri.StateRunning, t0, ctrStats(100, 1000, at), true)
			f.addContainer("u1", "b", "side", cri.StateRunning, t0, &runtimeapi.ContainerStats{}, false)
		},
		check: func(t *testing.T, s *statsapi.Summary) {
			p := podOf(t, s, "web")
			if len(p.Containers) != 1 || p.Containers[0].Name != "side" || *p.Containers[0].CPU.UsageCoreNanoSeconds != 0 ||
				*p.Containers[0].Memory.WorkingSetBytes != 0 {
				t.Errorf("containers %+v", p.Containers)
			}
		},
	}, {
		name: "exited containers are left out (an earlier attempt, an init container)",
		setup: func(f *fixture) {
			f.addPod("u1", "web", nil)
			f.addContainer("u1", "old", "app", cri.StateExited, t0, ctrStats(1, 1, at), false)
			f.addContainer("u1", "new", "app", cri.StateRunning, t0.Add(time.Second), ctrStats(2, 2, at), false)
			f.addContainer("u1", "init", "fill", cri.StateExited, t0, &runtimeapi.ContainerStats{}, false)
		},
		check: func(t *testing.T, s *statsapi.Summary) {
			p := podOf(t, s, "web")
			if len(p.Containers) != 1 || p.Containers[0].Name != "app" || *p.Containers[0].CPU.UsageCoreNanoSeconds != 2 {
				t.Errorf("containers %+v", p.Containers)
			}
		},
	}, {
		name: "pods of other agents are not listed",
		setup: func(f *fixture) {
			f.addPod("u1", "web", nil)
			f.addContainer("u1", "a", "app", cri.StateRunning, t0, ctrStats(100, 1000, at), false)
			f.rt.Containers["a"].Labels[cri.LabelNode] = "other"
		},
		check: func(t *testing.T, s *statsapi.Summary) {
			if len(s.Pods) != 0 {
				t.Errorf("pods %+v", s.Pods)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tc.setup(f)
			s, err := f.provider(t).Summary(context.Background(), false)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
		})
	}
}

func TestSummaryErrors(t *testing.T) {
	f := newFixture(t)
	f.addPod("u1", "web", &runtimeapi.LinuxPodSandboxStats{Cpu: &runtimeapi.CpuUsage{UsageCoreNanoSeconds: uv(1)}})
	f.addContainer("u1", "a", "app", cri.StateRunning, t0, ctrStats(100, 1000, t0.UnixNano()), false)
	p := f.provider(t)
	// The sandbox list failing (one sandbox containerd cannot measure): each pod's asked alone.
	f.rt.InjectError("ListPodSandboxStats", errors.New("cgroupPath is empty"))
	s, err := p.Summary(context.Background(), false)
	if err != nil || *podOf(t, s, "web").CPU.UsageCoreNanoSeconds != 1 {
		t.Fatalf("%v %+v", err, s)
	}
	// Failing for this pod too: the containers' sums stand in, the scrape succeeds.
	f.rt.InjectError("ListPodSandboxStats", errors.New("sandbox gone"))
	f.rt.InjectError("ListPodSandboxStats", errors.New("sandbox gone"))
	f.img.InjectError("ImageFsInfo", errors.New("no image fs"))
	s, err = p.Summary(context.Background(), false)
	if err != nil || *podOf(t, s, "web").CPU.UsageCoreNanoSeconds != 100 || s.Node.Runtime != nil {
		t.Fatalf("%v %+v", err, s)
	}
	// Container stats failing fails the summary, as upstream's.
	f.rt.InjectError("ListContainerStats", errors.New("runtime down"))
	if _, err := p.Summary(context.Background(), false); err == nil || !strings.Contains(err.Error(), "runtime down") {
		t.Fatalf("err %v", err)
	}
}

// CPU rates the runtime does not give are computed between rounds.
func TestUsageNanoCores(t *testing.T) {
	f := newFixture(t)
	f.addPod("u1", "web", nil)
	st := ctrStats(1e9, 1, t0.UnixNano())
	f.addContainer("u1", "a", "app", cri.StateRunning, t0, st, false)
	p := f.provider(t)
	s, _ := p.Summary(context.Background(), true)
	if c := podOf(t, s, "web").Containers[0].CPU; c.UsageNanoCores != nil {
		t.Fatalf("first sample has a rate: %+v", c)
	}
	st.Cpu = &runtimeapi.CpuUsage{Timestamp: t0.Add(2 * time.Second).UnixNano(), UsageCoreNanoSeconds: uv(2e9)}
	s, _ = p.Summary(context.Background(), true)
	if c := podOf(t, s, "web").Containers[0].CPU; c.UsageNanoCores == nil || *c.UsageNanoCores != 5e8 {
		t.Fatalf("rate %+v, want half a core", c)
	}
	if n := s.Node.CPU; n == nil || *n.UsageCoreNanoSeconds != 12345 {
		t.Errorf("node cpu %+v", n)
	}
}

func TestVolumesAndEphemeralStorage(t *testing.T) {
	f := newFixture(t)
	pod := f.addPod("u1", "web", &runtimeapi.LinuxPodSandboxStats{})
	pod.Spec.Volumes = []v1.Volume{
		{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{}}},
		{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/"}}},
		{Name: "notyet", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{}}},
	}
	data := filepath.Join(f.root, "pods/u1/volumes/kubernetes.io~empty-dir/data")
	write(t, filepath.Join(data, "f"), 64<<10)
	write(t, filepath.Join(f.root, "pods/u1/volumes/kubernetes.io~configmap/cfg/k"), 10)
	write(t, filepath.Join(f.root, "logs/ns_web_u1/app/0.log"), 8<<10)
	st := ctrStats(1, 1, 0)
	st.WritableLayer = &runtimeapi.FilesystemUsage{UsedBytes: uv(4096), InodesUsed: uv(3), FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: f.root}}
	f.addContainer("u1", "a", "app", cri.StateRunning, t0, st, false)
	p := f.provider(t)
	s, err := p.Summary(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	ps := podOf(t, s, "web")
	if len(ps.VolumeStats) != 2 || ps.VolumeStats[0].Name != "data" || ps.VolumeStats[1].Name != "cfg" {
		t.Fatalf("volumes %+v", ps.VolumeStats)
	}
	v := ps.VolumeStats[0]
	if *v.UsedBytes < 64<<10 || *v.UsedBytes > 64<<10+64<<10 || *v.InodesUsed != 2 || *v.CapacityBytes == 0 || v.PVCRef != nil {
		t.Errorf("data volume %+v", v.FsStats)
	}
	c := ps.Containers[0]
	if *c.Rootfs.UsedBytes != 4096 || *c.Rootfs.CapacityBytes == 0 || c.Logs == nil || *c.Logs.UsedBytes < 8<<10 {
		t.Errorf("rootfs %+v logs %+v", c.Rootfs, c.Logs)
	}
	want := *v.UsedBytes + *ps.VolumeStats[1].UsedBytes + 4096 + *c.Logs.UsedBytes
	if e := ps.EphemeralStorage; e == nil || *e.UsedBytes != want {
		t.Errorf("ephemeral storage %+v, want %d used", e, want)
	}
	// Usage is kept for volumeStatsAggPeriod: a file written now is seen a period later.
	write(t, filepath.Join(data, "g"), 64<<10)
	s, _ = p.Summary(context.Background(), false)
	if got := *podOf(t, s, "web").VolumeStats[0].UsedBytes; got != *v.UsedBytes {
		t.Errorf("volume measured again within the period: %d, was %d", got, *v.UsedBytes)
	}
	// only_cpu_and_memory: neither volumes nor filesystems.
	s, _ = p.Summary(context.Background(), true)
	if ps := podOf(t, s, "web"); ps.VolumeStats != nil || ps.EphemeralStorage != nil || ps.Containers[0].Rootfs != nil || s.Node.Fs != nil {
		t.Errorf("only_cpu_and_memory pod %+v node fs %+v", ps, s.Node.Fs)
	}
}

func write(t *testing.T, path string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestNodeStats(t *testing.T) {
	f := newFixture(t)
	f.img.FakeFilesystemUsage = []*runtimeapi.FilesystemUsage{{Timestamp: 1, UsedBytes: uv(77), InodesUsed: uv(5),
		FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: f.root}}}
	s, err := f.provider(t).Summary(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	n := s.Node
	if n.NodeName != "n1" || n.StartTime.Unix() != 1700000000 || *n.CPU.UsageCoreNanoSeconds != 12345 {
		t.Errorf("node %+v cpu %+v", n, n.CPU)
	}
	// usage 1000 KiB less 200 KiB inactive file; available is MemTotal less the working set.
	if m := n.Memory; *m.WorkingSetBytes != 800<<10 || *m.UsageBytes != 1000<<10 || *m.RSSBytes != 300<<10 ||
		*m.AvailableBytes != 4000<<10-800<<10 || *m.PageFaults != 9 {
		t.Errorf("node memory %+v", m)
	}
	if sw := n.Swap; sw == nil || *sw.SwapUsageBytes != 100<<10 || *sw.SwapAvailableBytes != 900<<10 {
		t.Errorf("node swap %+v", sw)
	}
	if n.Network == nil || n.Network.Name != "eth0" || len(n.Network.Interfaces) != 2 || *n.Network.RxBytes != 1000 {
		t.Errorf("node network %+v", n.Network)
	}
	if n.Fs == nil || *n.Fs.CapacityBytes == 0 || n.Runtime == nil || *n.Runtime.ImageFs.UsedBytes != 77 || n.Runtime.ContainerFs != n.Runtime.ImageFs {
		t.Errorf("fs %+v runtime %+v", n.Fs, n.Runtime)
	}
	if r := n.Rlimit; r == nil || *r.MaxPID != 4096 || *r.NumOfRunningProcesses != 321 {
		t.Errorf("rlimit %+v", r)
	}
	var names []string
	for _, c := range n.SystemContainers {
		names = append(names, c.Name)
		// The kubelet's cpuacct cgroup ("/") differs from its memory cgroup here.
		if c.CPU == nil || c.Memory == nil {
			t.Errorf("system container %s: cpu %v memory %v", c.Name, c.CPU, c.Memory)
		}
	}
	if strings.Join(names, ",") != "kubelet,pods" {
		t.Errorf("system containers %v", names)
	}
}

// fakeProc is a /proc with the files the host reader uses.
func fakeProc(t *testing.T) string {
	dir := t.TempDir()
	files := map[string]string{
		"stat":                   "cpu  100 5 50 1000 7 2 3 1 0 0\nbtime 1700000000\n",
		"meminfo":                "MemTotal: 4000 kB\nMemFree: 1000 kB\nSwapTotal: 1000 kB\nSwapFree: 900 kB\n",
		"loadavg":                "0.1 0.2 0.3 2/321 999\n",
		"sys/kernel/pid_max":     "4096\n",
		"sys/kernel/threads-max": "100000\n",
		"self/cgroup":            "5:memory:/kubelet.slice\n2:cpuacct:/\n1:cpu:/\n",
		"1/net/dev": "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n" +
			"    lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n  eth0: 1000 10 1 0 0 0 0 0 2000 20 2 0 0 0 0 0\n" +
			"  cni0: 30 3 0 0 0 0 0 0 40 4 0 0 0 0 0 0\nveth1234: 7 1 0 0 0 0 0 0 8 1 0 0 0 0 0 0\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(body), 0o644)
	}
	return dir
}

// fakeCgroupV1 is a v1 cgroup tree with the root's and the kubelet's counters.
func fakeCgroupV1(t *testing.T) string {
	dir := t.TempDir()
	for _, cg := range []string{"", "kubelet.slice", "kubepods"} {
		os.MkdirAll(filepath.Join(dir, "cpuacct", cg), 0o755)
		os.MkdirAll(filepath.Join(dir, "memory", cg), 0o755)
		os.WriteFile(filepath.Join(dir, "cpuacct", cg, "cpuacct.usage"), []byte("12345\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "memory", cg, "memory.usage_in_bytes"), []byte("1024000\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "memory", cg, "memory.limit_in_bytes"), []byte("9223372036854771712\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "memory", cg, "memory.stat"), []byte("pgfault 9\npgmajfault 1\ntotal_rss 307200\ntotal_inactive_file 204800\n"), 0o644)
	}
	return dir
}

func TestCgroupV2(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte("cpu memory\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "a"), 0o755)
	os.WriteFile(filepath.Join(dir, "a", "cpu.stat"), []byte("usage_usec 250\nuser_usec 100\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "a", "memory.current"), []byte("5000\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "a", "memory.max"), []byte("max\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "a", "memory.stat"), []byte("anon 3000\ninactive_file 1000\npgfault 4\n"), 0o644)
	h := newHost(fakeProc(t), dir)
	if cpu, ok := h.cgroupCPU("/a"); !ok || cpu != 250000 {
		t.Errorf("cpu %d %v", cpu, ok)
	}
	if m, ok := h.cgroupMemory("/a"); !ok || m.workingSet != 4000 || m.rss != 3000 || m.limit != 0 || m.pgfault != 4 {
		t.Errorf("memory %+v %v", m, ok)
	}
	// The v2 root has neither cpu.stat (older kernels) nor memory.current.
	if cpu, ok := h.cgroupCPU("/"); !ok || cpu != 161*1e7 {
		t.Errorf("root cpu %d %v", cpu, ok)
	}
	if m, ok := h.cgroupMemory("/"); !ok || m.usage != 3000<<10 {
		t.Errorf("root memory %+v %v", m, ok)
	}
}

func TestResourceMetrics(t *testing.T) {
	f := newFixture(t)
	f.addPod("u1", "web", &runtimeapi.LinuxPodSandboxStats{Cpu: &runtimeapi.CpuUsage{Timestamp: t0.UnixNano(), UsageCoreNanoSeconds: uv(3e9)},
		Memory: &runtimeapi.MemoryUsage{Timestamp: t0.UnixNano(), WorkingSetBytes: uv(4096)}})
	f.addContainer("u1", "a", "app", cri.StateRunning, t0, ctrStats(2e9, 2048, t0.UnixNano()), false)
	p := f.provider(t)
	w := httptest.NewRecorder()
	p.ResourceMetrics().ServeHTTP(w, httptest.NewRequest("GET", "/metrics/resource", nil))
	body := w.Body.String()
	for _, want := range []string{
		"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds\n",
		"# TYPE container_cpu_usage_seconds_total counter\n",
		`container_cpu_usage_seconds_total{container="app",namespace="ns",pod="web"} 2 1700000000000` + "\n",
		`container_memory_working_set_bytes{container="app",namespace="ns",pod="web"} 2048 1700000000000` + "\n",
		`container_start_time_seconds{container="app",namespace="ns",pod="web"} 1.7e+09` + "\n",
		`container_swap_usage_bytes{container="app",namespace="ns",pod="web"} 0 `,
		`container_swap_limit_bytes{container="app",namespace="ns",pod="web"} 0 `,
		`pod_swap_usage_bytes{namespace="ns",pod="web"} 0 `,
		`pod_cpu_usage_seconds_total{namespace="ns",pod="web"} 3 1700000000000` + "\n",
		`pod_memory_working_set_bytes{namespace="ns",pod="web"} 4096 1700000000000` + "\n",
		"# HELP node_swap_usage_bytes [ALPHA] Current swap usage of the node in bytes. Reported only on non-windows systems\n",
		"node_cpu_usage_seconds_total 1.2345e-05 ",
		"resource_scrape_error 0\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics/resource lacks %q:\n%s", want, body)
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := parser.TextToMetricFamilies(strings.NewReader(body)); err != nil {
		t.Errorf("parse: %v", err)
	}
	f.rt.InjectError("ListContainerStats", errors.New("down"))
	w = httptest.NewRecorder()
	p.ResourceMetrics().ServeHTTP(w, httptest.NewRequest("GET", "/metrics/resource", nil))
	if !strings.Contains(w.Body.String(), "resource_scrape_error 1\n") || strings.Contains(w.Body.String(), "pod_cpu") {
		t.Errorf("failed scrape:\n%s", w.Body)
	}
}

func TestCadvisorMetrics(t *testing.T) {
	f := newFixture(t)
	pod := f.addPod("u1", "web", &runtimeapi.LinuxPodSandboxStats{
		Cpu: &runtimeapi.CpuUsage{Timestamp: t0.UnixNano(), UsageCoreNanoSeconds: uv(3e9)},
		Network: &runtimeapi.NetworkUsage{Timestamp: t0.UnixNano(), DefaultInterface: &runtimeapi.NetworkInterfaceUsage{Name: "eth0",
			RxBytes: uv(11), TxBytes: uv(22)}}})
	pod.Status.QOSClass = v1.PodQOSBurstable
	pod.Spec.Containers = []v1.Container{{Name: "app", Resources: v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m")},
		Limits:   v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi")}}}}
	st := ctrStats(2e9, 2048, t0.UnixNano())
	st.WritableLayer = &runtimeapi.FilesystemUsage{UsedBytes: uv(4096), FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: f.root}}
	f.addContainer("u1", "a", "app", cri.StateRunning, t0, st, false)
	w := httptest.NewRecorder()
	f.provider(t).CadvisorMetrics().ServeHTTP(w, httptest.NewRequest("GET", "/metrics/cadvisor", nil))
	body := w.Body.String()
	// Label names come sorted.
	ct := `container="app",id="/kubepods/burstable/podu1/a",image="busybox:1",name="a",namespace="ns",pod="web"`
	ctCPU := `container="app",cpu="total",id="/kubepods/burstable/podu1/a",image="busybox:1",name="a",namespace="ns",pod="web"`
	ctFs := `container="app",device=`
	for _, want := range []string{
		`container_cpu_usage_seconds_total{` + ctCPU + `} 2 1700000000000`,
		`container_memory_working_set_bytes{` + ct + `} 2048 1700000000000`,
		`container_memory_rss{` + ct + `} 1024 `,
		`container_memory_usage_bytes{` + ct + `} 2058 `,
		`container_spec_cpu_shares{` + ct + `} 256`,
		`container_spec_memory_limit_bytes{` + ct + `} 6.7108864e+07`,
		`container_last_seen{` + ct + `} `,
		`container_fs_usage_bytes{` + ctFs,
		`container_cpu_usage_seconds_total{container="",cpu="total",id="/kubepods/burstable/podu1",image="",name="",namespace="ns",pod="web"} 3 `,
		`container_network_receive_bytes_total{container="",id="/kubepods/burstable/podu1/sb-u1",image="",interface="eth0",name="sb-u1",namespace="ns",pod="web"} 11 `,
		`container_network_transmit_bytes_total{container="",id="/",image="",interface="eth0",name="",namespace="",pod=""} 2000 `,
		`container_memory_working_set_bytes{container="",id="/kubelet.slice",image="",name="",namespace="",pod="",} `,
	} {
		want = strings.ReplaceAll(want, `pod="",}`, `pod=""}`)
		if !strings.Contains(body, want) {
			t.Errorf("/metrics/cadvisor lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := parser.TextToMetricFamilies(strings.NewReader(body)); err != nil {
		t.Errorf("parse: %v", err)
	}
}

// TestContainerCgroup: cAdvisor's id of a container is the cgroup its runtime made for it.
func TestContainerCgroup(t *testing.T) {
	for _, tc := range []struct {
		runtime, driver, parent, want string
	}{
		{"containerd", cri.CgroupfsDriver, "/kubepods/podu1", "/kubepods/podu1/c1"},
		{"containerd", cri.SystemdDriver, "/kubepods.slice/kubepods-podu1.slice", "/kubepods.slice/kubepods-podu1.slice/cri-containerd-c1.scope"},
		{"containerd", cri.CgroupfsDriver, "", "/k8s.io/c1"},
		{"cri-o", cri.CgroupfsDriver, "/kubepods/podu1", "/kubepods/podu1/crio-c1"},
		{"cri-o", cri.SystemdDriver, "/kubepods.slice/kubepods-podu1.slice", "/kubepods.slice/kubepods-podu1.slice/crio-c1.scope"},
		{"cri-o", cri.CgroupfsDriver, "", "/crio/crio-c1"},
		{"cri-o", cri.SystemdDriver, "", "/system.slice/crio-c1.scope"},
	} {
		p := &Provider{cfg: Config{RuntimeName: tc.runtime, CgroupDriver: tc.driver}}
		if got := p.containerCgroup(tc.parent, "c1"); got != tc.want {
			t.Errorf("%s %s parent %q: %q, want %q", tc.runtime, tc.driver, tc.parent, got, tc.want)
		}
	}
}

// Image GC reads the image filesystem: CRI's usage, statfs's capacity; errors when either
// cannot say.
func TestImageFsStats(t *testing.T) {
	f := newFixture(t)
	p := f.provider(t)
	if _, err := p.ImageFsStats(context.Background()); err == nil {
		t.Error("no image filesystem reported: want an error")
	}
	f.img.FakeFilesystemUsage = []*runtimeapi.FilesystemUsage{{UsedBytes: uv(77), FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: f.root}}}
	fs, err := p.ImageFsStats(context.Background())
	if err != nil || *fs.UsedBytes != 77 || *fs.CapacityBytes == 0 || *fs.AvailableBytes > *fs.CapacityBytes {
		t.Errorf("%+v %v", fs, err)
	}
	f.img.FakeFilesystemUsage[0].FsId.Mountpoint = filepath.Join(f.root, "missing")
	if _, err := p.ImageFsStats(context.Background()); err == nil || !strings.Contains(err.Error(), "no capacity") {
		t.Errorf("unreadable mountpoint: %v", err)
	}
	f.img.InjectError("ImageFsInfo", errors.New("no image fs"))
	if _, err := p.ImageFsStats(context.Background()); err == nil || !strings.Contains(err.Error(), "no image fs") {
		t.Errorf("runtime error: %v", err)
	}
}

// TestPersistentVolumeStats: persistent volumes come after the ephemeral ones with their
// claim named, measured as their plugin says (its own figures, or statfs of a folder), are
// left out of ephemeral storage, and each claim is listed once for kubelet_volume_stats_*.
func TestPersistentVolumeStats(t *testing.T) {
	f := newFixture(t)
	pod := f.addPod("u1", "web", &runtimeapi.LinuxPodSandboxStats{})
	pod.Spec.Volumes = []v1.Volume{
		{Name: "local", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "c-local"}}},
		{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "eph", VolumeSource: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{}}},
		{Name: "inline", VolumeSource: v1.VolumeSource{CSI: &v1.CSIVolumeSource{Driver: "d"}}},
	}
	write(t, filepath.Join(f.root, "pods/u1/volumes/kubernetes.io~empty-dir/data/f"), 10)
	st := ctrStats(1, 1, 0)
	f.addContainer("u1", "a", "app", cri.StateRunning, t0, st, false)
	p := f.provider(t)
	n := func(v uint64) *uint64 { return &v }
	driver := statsapi.FsStats{CapacityBytes: n(100), AvailableBytes: n(60), UsedBytes: n(40), Inodes: n(10), InodesFree: n(7), InodesUsed: n(3)}
	p.cfg.Persistent = func(_ context.Context, uid types.UID, name string) (*statsapi.FsStats, string, bool) {
		switch name {
		case "local":
			return nil, f.root, true
		case "eph", "inline":
			return &driver, "", true
		}
		return nil, "", false
	}
	s, err := p.Summary(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	ps := podOf(t, s, "web")
	var names []string
	for _, v := range ps.VolumeStats {
		names = append(names, v.Name)
	}
	if strings.Join(names, " ") != "data local eph inline" {
		t.Fatalf("volumes %q, want the ephemeral one first", names)
	}
	local, eph, inline := ps.VolumeStats[1], ps.VolumeStats[2], ps.VolumeStats[3]
	if local.PVCRef == nil || local.PVCRef.Name != "c-local" || local.CapacityBytes == nil || *local.CapacityBytes == 0 ||
		*local.UsedBytes+*local.AvailableBytes > *local.CapacityBytes || *local.InodesUsed != *local.Inodes-*local.InodesFree {
		t.Errorf("local volume (statfs) %+v", local)
	}
	if eph.PVCRef == nil || eph.PVCRef.Name != "web-eph" || *eph.UsedBytes != 40 || inline.PVCRef != nil || *inline.CapacityBytes != 100 {
		t.Errorf("eph %+v inline %+v", eph, inline)
	}
	// The container has no writable layer or logs here: the emptyDir is all there is.
	if e := ps.EphemeralStorage; e == nil || *e.UsedBytes != *ps.VolumeStats[0].UsedBytes {
		t.Errorf("ephemeral storage %+v counts persistent volumes", e)
	}
	claims := p.ClaimVolumeStats(context.Background())
	if len(claims) != 2 || claims[0].PVCRef.Name != "c-local" || claims[1].PVCRef.Name != "web-eph" {
		t.Errorf("claim volume stats %+v", claims)
	}
}
