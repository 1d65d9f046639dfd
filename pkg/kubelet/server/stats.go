package server

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// statsSummary serves /stats/summary: the node's CPU and memory (from /proc) and, per pod,
// its running containers' CPU and memory as the runtime reports them (ListContainerStats),
// summed for the pod. Filesystem, network and volume stats are not reported.
func (s *Server) statsSummary(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rt := s.cfg.Runtime
	sel := map[string]string{cri.LabelNode: s.cfg.NodeName}
	cts, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{
		LabelSelector: sel, State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
	if err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	stats, err := rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{LabelSelector: sel})
	if err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	byID := map[string]*runtimeapi.ContainerStats{}
	for _, st := range stats {
		byID[st.GetAttributes().GetId()] = st
	}
	pods := map[types.UID]*statsapi.PodStats{}
	for _, p := range s.cfg.Pods() {
		ps := &statsapi.PodStats{PodRef: statsapi.PodReference{Name: p.Name, Namespace: p.Namespace, UID: string(p.UID)},
			Containers: []statsapi.ContainerStats{}}
		if p.Status.StartTime != nil {
			ps.StartTime = *p.Status.StartTime
		}
		pods[p.UID] = ps
	}
	for _, ct := range cts {
		ps := pods[types.UID(ct.Labels[cri.LabelPodUID])]
		if ps == nil {
			continue
		}
		cs := statsapi.ContainerStats{Name: ct.GetMetadata().GetName(), StartTime: metav1.NewTime(time.Unix(0, ct.CreatedAt))}
		if st := byID[ct.Id]; st != nil {
			cs.CPU, cs.Memory = cpuStats(st.Cpu), memoryStats(st.Memory)
		}
		ps.Containers = append(ps.Containers, cs)
		ps.CPU, ps.Memory = addCPU(ps.CPU, cs.CPU), addMemory(ps.Memory, cs.Memory)
	}
	sum := statsapi.Summary{Node: s.node.sample(s.cfg.NodeName), Pods: []statsapi.PodStats{}}
	for _, ps := range pods {
		sum.Pods = append(sum.Pods, *ps)
	}
	writeJSON(w, sum)
}

func u64(v *runtimeapi.UInt64Value) *uint64 {
	if v == nil {
		return nil
	}
	x := v.Value
	return &x
}

func cpuStats(c *runtimeapi.CpuUsage) *statsapi.CPUStats {
	if c == nil {
		return nil
	}
	return &statsapi.CPUStats{Time: metav1.NewTime(time.Unix(0, c.Timestamp)),
		UsageNanoCores: u64(c.UsageNanoCores), UsageCoreNanoSeconds: u64(c.UsageCoreNanoSeconds)}
}

func memoryStats(m *runtimeapi.MemoryUsage) *statsapi.MemoryStats {
	if m == nil {
		return nil
	}
	return &statsapi.MemoryStats{Time: metav1.NewTime(time.Unix(0, m.Timestamp)),
		AvailableBytes: u64(m.AvailableBytes), UsageBytes: u64(m.UsageBytes), WorkingSetBytes: u64(m.WorkingSetBytes),
		RSSBytes: u64(m.RssBytes), PageFaults: u64(m.PageFaults), MajorPageFaults: u64(m.MajorPageFaults)}
}

// sum adds b to a (nil when both are).
func sum(a, b *uint64) *uint64 {
	if a == nil && b == nil {
		return nil
	}
	var x uint64
	for _, p := range []*uint64{a, b} {
		if p != nil {
			x += *p
		}
	}
	return &x
}

func addCPU(a, b *statsapi.CPUStats) *statsapi.CPUStats {
	if b == nil {
		return a
	}
	if a == nil {
		a = &statsapi.CPUStats{Time: b.Time}
	}
	return &statsapi.CPUStats{Time: b.Time, UsageNanoCores: sum(a.UsageNanoCores, b.UsageNanoCores),
		UsageCoreNanoSeconds: sum(a.UsageCoreNanoSeconds, b.UsageCoreNanoSeconds)}
}

func addMemory(a, b *statsapi.MemoryStats) *statsapi.MemoryStats {
	if b == nil {
		return a
	}
	if a == nil {
		a = &statsapi.MemoryStats{Time: b.Time}
	}
	return &statsapi.MemoryStats{Time: b.Time, UsageBytes: sum(a.UsageBytes, b.UsageBytes),
		WorkingSetBytes: sum(a.WorkingSetBytes, b.WorkingSetBytes), RSSBytes: sum(a.RSSBytes, b.RSSBytes),
		PageFaults: sum(a.PageFaults, b.PageFaults), MajorPageFaults: sum(a.MajorPageFaults, b.MajorPageFaults)}
}

// nodeSampler reads the node's CPU and memory from /proc; the CPU rate (usageNanoCores) is
// computed against the previous sample.
type nodeSampler struct {
	mu       sync.Mutex
	lastAt   time.Time
	lastCPU  uint64
	procRoot string // "" means /proc
}

// userHZ is the kernel's clock-tick rate for /proc/stat (100 on Linux).
const userHZ = 100

func (n *nodeSampler) sample(node string) statsapi.NodeStats {
	root := n.procRoot
	if root == "" {
		root = "/proc"
	}
	now := time.Now()
	ns := statsapi.NodeStats{NodeName: node}
	stat, _ := os.ReadFile(root + "/stat")
	cpuTicks, boot := parseProcStat(stat)
	if boot > 0 {
		ns.StartTime = metav1.NewTime(time.Unix(boot, 0))
	}
	if cpuTicks > 0 {
		usage := cpuTicks * (1e9 / userHZ)
		ns.CPU = &statsapi.CPUStats{Time: metav1.NewTime(now), UsageCoreNanoSeconds: &usage}
		n.mu.Lock()
		if !n.lastAt.IsZero() && usage >= n.lastCPU && now.Sub(n.lastAt) > 0 {
			rate := uint64(float64(usage-n.lastCPU) / now.Sub(n.lastAt).Seconds())
			ns.CPU.UsageNanoCores = &rate
		}
		n.lastAt, n.lastCPU = now, usage
		n.mu.Unlock()
	}
	mem, _ := os.ReadFile(root + "/meminfo")
	if m := parseMeminfo(mem); m["MemTotal"] > 0 {
		total, free, avail := m["MemTotal"], m["MemFree"], m["MemAvailable"]
		usage, ws := total-free, total-avail
		ns.Memory = &statsapi.MemoryStats{Time: metav1.NewTime(now), AvailableBytes: &avail, UsageBytes: &usage, WorkingSetBytes: &ws}
	}
	return ns
}

// parseProcStat returns the busy CPU ticks of all CPUs (user, nice, system, irq, softirq,
// steal) and the boot time.
func parseProcStat(b []byte) (busy uint64, boot int64) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) > 8 && f[0] == "cpu":
			for _, i := range []int{1, 2, 3, 6, 7, 8} {
				v, _ := strconv.ParseUint(f[i], 10, 64)
				busy += v
			}
		case len(f) == 2 && f[0] == "btime":
			boot, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return busy, boot
}

// parseMeminfo returns /proc/meminfo's values in bytes.
func parseMeminfo(b []byte) map[string]uint64 {
	out := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		if len(f) == 3 && f[2] == "kB" {
			v *= 1024
		}
		out[strings.TrimSuffix(f[0], ":")] = v
	}
	return out
}
