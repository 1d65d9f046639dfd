package stats

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/volume"
)

// Summary measures once and returns upstream's stats summary; with onlyCPUAndMemory,
// the node's and pods' CPU and memory only (upstream's ?only_cpu_and_memory=true: no
// filesystems, network, volumes or rlimit, and no ImageFsInfo call).
func (p *Provider) Summary(ctx context.Context, onlyCPUAndMemory bool) (*statsapi.Summary, error) {
	sum, _, err := p.summary(ctx, !onlyCPUAndMemory)
	return sum, err
}

// summary measures once: the summary, and the round it came from with each pod's stats
// (same order as round.pods) for the cAdvisor view.
func (p *Provider) summary(ctx context.Context, full bool) (*statsapi.Summary, *round, error) {
	r, err := p.measure(ctx)
	if err != nil {
		return nil, nil, err
	}
	var rootFs *fsInfo
	if full {
		if fi, err := statfs(p.cfg.RootDir); err == nil {
			rootFs = &fi
		}
	}
	sum := &statsapi.Summary{Node: p.nodeStats(ctx, r.now, full, rootFs), Pods: make([]statsapi.PodStats, 0, len(r.pods))}
	mounts := map[string]*fsInfo{} // statfs of the runtime's filesystems, once a round
	sort.Slice(r.pods, func(i, j int) bool {
		a, b := r.pods[i], r.pods[j]
		return a.ns < b.ns || a.ns == b.ns && a.name < b.name
	})
	for _, pr := range r.pods {
		sum.Pods = append(sum.Pods, p.podStats(ctx, pr, r.now, full, rootFs, mounts))
	}
	if full {
		p.du.sweep()
	}
	p.forget(r.now)
	return sum, r, nil
}

func (p *Provider) podStats(ctx context.Context, pr *podRound, now time.Time, full bool, rootFs *fsInfo, mounts map[string]*fsInfo) statsapi.PodStats {
	ps := statsapi.PodStats{PodRef: statsapi.PodReference{Name: pr.name, Namespace: pr.ns, UID: string(pr.uid)},
		StartTime: metav1.NewTime(pr.start), Containers: []statsapi.ContainerStats{}}
	for _, c := range pr.containers {
		ps.Containers = append(ps.Containers, p.containerStats(pr, c, now, full, rootFs, mounts))
	}
	lx := pr.sandbox.GetLinux()
	if c := lx.GetCpu(); c != nil {
		ps.CPU = p.cpuStats("pod/"+string(pr.uid), c, now)
	}
	if m := lx.GetMemory(); m != nil {
		ps.Memory = memoryStats(m, now)
	}
	for _, c := range ps.Containers { // no pod-level figures from the runtime: sum them
		if lx.GetCpu() == nil {
			ps.CPU = addCPU(ps.CPU, c.CPU)
		}
		if lx.GetMemory() == nil {
			ps.Memory = addMemory(ps.Memory, c.Memory)
		}
		ps.Swap = addSwap(ps.Swap, c.Swap)
	}
	if !full {
		return ps
	}
	ps.Network = networkStats(lx.GetNetwork())
	if n := lx.GetProcess().GetProcessCount(); n != nil {
		ps.ProcessStats = &statsapi.ProcessStats{ProcessCount: &n.Value}
	}
	ps.VolumeStats = p.volumeStats(ctx, pr, now)
	ps.EphemeralStorage = p.ephemeralStorage(&ps, pr, now, rootFs)
	return ps
}

// containerStats converts the runtime's figures; CPU, memory and swap are zero rather
// than absent when the runtime has none (a container just started or exited), as
// upstream's.
func (p *Provider) containerStats(pr *podRound, c ctrRound, now time.Time, full bool, rootFs *fsInfo, mounts map[string]*fsInfo) statsapi.ContainerStats {
	s := c.stats
	cs := statsapi.ContainerStats{Name: c.name, StartTime: metav1.NewTime(c.created)}
	if s.GetCpu() != nil {
		cs.CPU = p.cpuStats(s.GetAttributes().GetId(), s.GetCpu(), now)
	} else {
		cs.CPU = &statsapi.CPUStats{Time: metav1.NewTime(now), UsageCoreNanoSeconds: new(uint64), UsageNanoCores: new(uint64)}
	}
	if s.GetMemory() != nil {
		cs.Memory = memoryStats(s.GetMemory(), now)
	} else {
		cs.Memory = &statsapi.MemoryStats{Time: metav1.NewTime(now), WorkingSetBytes: new(uint64), UsageBytes: new(uint64), RSSBytes: new(uint64)}
	}
	cs.Swap = &statsapi.SwapStats{Time: metav1.NewTime(now), SwapUsageBytes: new(uint64), SwapAvailableBytes: new(uint64)}
	if sw := s.GetSwap(); sw != nil {
		cs.Swap.Time = stamp(sw.Timestamp, now)
		if sw.SwapUsageBytes != nil {
			cs.Swap.SwapUsageBytes = u64(sw.SwapUsageBytes)
		}
		if sw.SwapAvailableBytes != nil {
			cs.Swap.SwapAvailableBytes = u64(sw.SwapAvailableBytes)
		}
	}
	if !full {
		return cs
	}
	if wl := s.GetWritableLayer(); wl != nil {
		cs.Rootfs = &statsapi.FsStats{Time: stamp(wl.Timestamp, now), UsedBytes: u64(wl.UsedBytes), InodesUsed: u64(wl.InodesUsed)}
		if fi := mountFs(mounts, wl.GetFsId().GetMountpoint()); fi != nil {
			withCapacity(cs.Rootfs, fi)
		}
	}
	if used, inodes, ok := filesUsage(filepath.Join(p.podLogDir(pr), c.name), now); ok && rootFs != nil {
		cs.Logs = &statsapi.FsStats{Time: metav1.NewTime(now), UsedBytes: &used, InodesUsed: &inodes}
		withCapacity(cs.Logs, rootFs)
	}
	return cs
}

func (p *Provider) podLogDir(pr *podRound) string {
	return filepath.Join(p.cfg.PodLogsDir, pr.ns+"_"+pr.name+"_"+string(pr.uid))
}

// volumePlugin is the directory a volume's plugin keeps it in, for the volume types
// whose usage upstream reports (all ephemeral); "" for others.
func volumePlugin(v v1.Volume) string {
	switch {
	case v.EmptyDir != nil:
		return "kubernetes.io~empty-dir"
	case v.ConfigMap != nil:
		return "kubernetes.io~configmap"
	case v.Secret != nil:
		return "kubernetes.io~secret"
	case v.Projected != nil:
		return "kubernetes.io~projected"
	case v.DownwardAPI != nil:
		return "kubernetes.io~downward-api"
	}
	return ""
}

// volumeStats measures the pod's emptyDir, configMap, secret, projected and downward
// API volumes where they are mounted (usage cached for volumeStatsAggPeriod), then, as
// upstream lists them after the ephemeral ones, its persistent volumes (claims, with
// their claim named, and CSI volumes) as their plugins report them.
func (p *Provider) volumeStats(ctx context.Context, pr *podRound, now time.Time) []statsapi.VolumeStats {
	if pr.pod == nil {
		return nil
	}
	var out, persistent []statsapi.VolumeStats
	for _, v := range pr.pod.Spec.Volumes {
		if claim, ok := persistentVolume(pr.pod, &v); ok {
			if fs, ok := p.persistentStats(ctx, pr.uid, v.Name, now); ok {
				persistent = append(persistent, statsapi.VolumeStats{Name: v.Name, FsStats: fs, PVCRef: claim})
			}
			continue
		}
		plugin := volumePlugin(v)
		if plugin == "" {
			continue
		}
		dir := filepath.Join(p.cfg.RootDir, "pods", string(pr.uid), "volumes", plugin, v.Name)
		if fs, ok := p.du.get(dir, now); ok {
			out = append(out, statsapi.VolumeStats{Name: v.Name, FsStats: fs})
		}
	}
	return append(out, persistent...)
}

// persistentStats measures a persistent volume as its plugin does: the plugin's own
// figures, or statfs of the folder it names (measured at most once per
// volumeStatsAggPeriod, as the ephemeral volumes).
func (p *Provider) persistentStats(ctx context.Context, uid types.UID, name string, now time.Time) (statsapi.FsStats, bool) {
	if p.cfg.Persistent == nil {
		return statsapi.FsStats{}, false
	}
	fs, path, ok := p.cfg.Persistent(ctx, uid, name)
	if !ok {
		return statsapi.FsStats{}, false
	}
	if path == "" {
		return *fs, true
	}
	return p.du.getWith(path, now, measureFs)
}

// measureFs is upstream's MetricsStatFS: the figures of the filesystem holding path.
func measureFs(path string, now time.Time) (statsapi.FsStats, error) {
	fi, err := statfs(path)
	if err != nil {
		return statsapi.FsStats{}, err
	}
	used, inodesUsed := fi.used, fi.inodes-fi.inodesFree
	out := statsapi.FsStats{Time: metav1.NewTime(now), UsedBytes: &used, InodesUsed: &inodesUsed}
	withCapacity(&out, &fi)
	return out, nil
}

// persistentVolume reports whether v is measured by its plugin rather than on the node
// filesystem, and names its claim (nil for an inline CSI volume).
func persistentVolume(pod *v1.Pod, v *v1.Volume) (*statsapi.PVCReference, bool) {
	if claim, ok := volume.ClaimName(pod, v); ok {
		return &statsapi.PVCReference{Name: claim, Namespace: pod.Namespace}, true
	}
	return nil, v.CSI != nil
}

// isPersistent: the pod's volume of that name is a persistent one (not ephemeral storage).
func isPersistent(pod *v1.Pod, name string) bool {
	if pod == nil {
		return false
	}
	for i := range pod.Spec.Volumes {
		if v := &pod.Spec.Volumes[i]; v.Name == name {
			_, ok := persistentVolume(pod, v)
			return ok
		}
	}
	return false
}

// ClaimVolumeStats are the measured volumes of the node's pods that belong to claims, each
// claim once: what upstream's kubelet_volume_stats_* report.
func (p *Provider) ClaimVolumeStats(ctx context.Context) []statsapi.VolumeStats {
	now := time.Now()
	seen := map[statsapi.PVCReference]bool{}
	var out []statsapi.VolumeStats
	for _, pod := range p.cfg.Pods() {
		for i := range pod.Spec.Volumes {
			v := &pod.Spec.Volumes[i]
			claim, ok := persistentVolume(pod, v)
			if !ok || claim == nil || seen[*claim] {
				continue
			}
			if fs, ok := p.persistentStats(ctx, pod.UID, v.Name, now); ok {
				seen[*claim] = true
				out = append(out, statsapi.VolumeStats{Name: v.Name, FsStats: fs, PVCRef: claim})
			}
		}
	}
	return out
}

// ephemeralStorage is upstream's sum: containers' writable layers and logs, the
// ephemeral volumes, files in the pod's log directory and its etc-hosts file, against
// the node filesystem's capacity.
func (p *Provider) ephemeralStorage(ps *statsapi.PodStats, pr *podRound, now time.Time, rootFs *fsInfo) *statsapi.FsStats {
	if rootFs == nil {
		return nil
	}
	out := &statsapi.FsStats{Time: metav1.NewTime(now)}
	withCapacity(out, rootFs)
	add := func(used, inodes *uint64) {
		out.UsedBytes, out.InodesUsed = addU64(out.UsedBytes, used), addU64(out.InodesUsed, inodes)
	}
	for _, c := range ps.Containers {
		if c.Rootfs != nil {
			add(c.Rootfs.UsedBytes, c.Rootfs.InodesUsed)
			if c.Logs != nil {
				add(c.Logs.UsedBytes, c.Logs.InodesUsed)
			}
		}
	}
	for _, v := range ps.VolumeStats {
		if !isPersistent(pr.pod, v.Name) {
			add(v.UsedBytes, v.InodesUsed)
		}
	}
	if used, inodes, ok := filesUsage(p.podLogDir(pr), now); ok {
		add(&used, &inodes)
	}
	if f, err := measureDir(filepath.Join(p.cfg.RootDir, "pods", string(pr.uid), "etc-hosts"), now); err == nil {
		add(f.UsedBytes, f.InodesUsed)
	}
	return out
}

// nodeStats: the root cgroup's CPU and memory, swap, the system containers; in full,
// the host's interfaces, the node filesystem, the runtime's and the task limits.
func (p *Provider) nodeStats(ctx context.Context, now time.Time, full bool, rootFs *fsInfo) statsapi.NodeStats {
	ns := statsapi.NodeStats{NodeName: p.cfg.NodeName, StartTime: metav1.NewTime(p.host.bootTime())}
	root := p.cgroupStats("node", sameCgroup("/"), now)
	ns.CPU, ns.Memory = root.CPU, root.Memory
	if ns.Memory != nil {
		if total := p.host.meminfo()["MemTotal"]; total >= *ns.Memory.WorkingSetBytes {
			avail := total - *ns.Memory.WorkingSetBytes
			ns.Memory.AvailableBytes = &avail
		}
	}
	mi := p.host.meminfo()
	if total, free := mi["SwapTotal"], mi["SwapFree"]; total >= free {
		used := total - free
		ns.Swap = &statsapi.SwapStats{Time: metav1.NewTime(now), SwapUsageBytes: &used, SwapAvailableBytes: &free}
	}
	ns.SystemContainers = p.systemContainers(ctx, now)
	if !full {
		return ns
	}
	ns.Network = hostNetwork(p.host.hostInterfaces(), now)
	if rootFs != nil {
		ns.Fs = &statsapi.FsStats{Time: metav1.NewTime(now), UsedBytes: &rootFs.used}
		withCapacity(ns.Fs, rootFs)
		inodesUsed := rootFs.inodes - rootFs.inodesFree
		ns.Fs.InodesUsed = &inodesUsed
	}
	ns.Runtime = p.runtimeFs(ctx, now)
	if maxPID, procs, ok := p.host.rlimit(); ok {
		ns.Rlimit = &statsapi.RlimitStats{Time: metav1.NewTime(now), MaxPID: &maxPID, NumOfRunningProcesses: &procs}
	}
	return ns
}

// runtimeFs is the runtime's image filesystem (and its container filesystem, which is
// the same one unless the runtime names another), or nil when the runtime cannot say.
func (p *Provider) runtimeFs(ctx context.Context, now time.Time) *statsapi.RuntimeStats {
	rs, err := p.runtimeStats(ctx, now)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("Image filesystem info unavailable", "err", err)
		return nil
	}
	return rs
}

// ImageFsStats is the runtime's image filesystem as the summary has it: used bytes from
// CRI ImageFsInfo, capacity and available bytes from statfs of its mountpoint (upstream's
// ImageFsStats, what image garbage collection reads). An error when either cannot say.
func (p *Provider) ImageFsStats(ctx context.Context) (*statsapi.FsStats, error) {
	rs, err := p.runtimeStats(ctx, time.Now())
	if err != nil {
		return nil, err
	}
	if rs.ImageFs.CapacityBytes == nil {
		return nil, errors.New("image filesystem: no capacity (its mountpoint cannot be read)")
	}
	return rs.ImageFs, nil
}

// DedicatedImageFs says whether the runtime's image filesystem is another device than
// the kubelet's root directory (upstream's HasDedicatedImageFs).
func (p *Provider) DedicatedImageFs(ctx context.Context) (bool, error) {
	resp, err := p.imageFsInfo(ctx)
	if err != nil {
		return false, err
	}
	var img, root unix.Stat_t
	if err := unix.Stat(resp.ImageFilesystems[0].GetFsId().GetMountpoint(), &img); err != nil {
		return false, fmt.Errorf("image filesystem: %w", err)
	}
	if err := unix.Stat(p.cfg.RootDir, &root); err != nil {
		return false, fmt.Errorf("root directory: %w", err)
	}
	return img.Dev != root.Dev, nil
}

// imageFsInfo asks the runtime for its filesystems; it fails when it names no image
// filesystem.
func (p *Provider) imageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	resp, err := p.cfg.Runtime.ImageFsInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("image filesystem info: %w", err)
	}
	if len(resp.GetImageFilesystems()) == 0 {
		return nil, errors.New("image filesystem info: the runtime reports no image filesystem")
	}
	return resp, nil
}

func (p *Provider) runtimeStats(ctx context.Context, now time.Time) (*statsapi.RuntimeStats, error) {
	resp, err := p.imageFsInfo(ctx)
	if err != nil {
		return nil, err
	}
	conv := func(u *runtimeapi.FilesystemUsage) *statsapi.FsStats {
		fs := &statsapi.FsStats{Time: stamp(u.Timestamp, now), UsedBytes: u64(u.UsedBytes), InodesUsed: u64(u.InodesUsed)}
		if fi, err := statfs(u.GetFsId().GetMountpoint()); err == nil {
			withCapacity(fs, &fi)
		}
		return fs
	}
	rs := &statsapi.RuntimeStats{ImageFs: conv(resp.ImageFilesystems[0])}
	rs.ContainerFs = rs.ImageFs
	if cf := resp.GetContainerFilesystems(); len(cf) > 0 {
		rs.ContainerFs = conv(cf[0])
	}
	return rs, nil
}

// systemContainers: the kubelet's, the runtime's and the pods' cgroups, as upstream's
// summary names them.
func (p *Provider) systemContainers(ctx context.Context, now time.Time) []statsapi.ContainerStats {
	var out []statsapi.ContainerStats
	for _, sc := range []struct {
		name   string
		cgroup cgroupRef
	}{
		{statsapi.SystemContainerKubelet, p.kubeletCgroup()},
		{statsapi.SystemContainerRuntime, p.runtimeCgroup(ctx, now)},
		{statsapi.SystemContainerPods, p.podsCgroup()},
	} {
		if sc.cgroup.mem == "" && sc.cgroup.cpu == "" {
			continue
		}
		cs := p.cgroupStats("sys/"+sc.name, sc.cgroup, now)
		if cs.CPU == nil && cs.Memory == nil {
			continue
		}
		cs.Name = sc.name
		if sc.name == statsapi.SystemContainerKubelet {
			cs.StartTime = metav1.NewTime(p.started)
		}
		out = append(out, cs)
	}
	return out
}

func (p *Provider) kubeletCgroup() cgroupRef {
	if p.cfg.KubeletCgroups != "" {
		return sameCgroup(p.cfg.KubeletCgroups)
	}
	return p.host.processCgroup("self")
}

// podsCgroup is the cgroup all pods are under: <cgroupRoot>/kubepods with QoS cgroups,
// else the cgroup root (upstream's GetPodCgroupRoot).
func (p *Provider) podsCgroup() cgroupRef {
	if !p.cfg.CgroupsPerQOS {
		return sameCgroup(p.cfg.CgroupRoot)
	}
	if p.cfg.CgroupDriver == cri.SystemdDriver {
		root := strings.TrimSuffix(p.cfg.CgroupRoot, "/")
		return sameCgroup(root + "/kubepods.slice")
	}
	return sameCgroup(filepath.Join(p.cfg.CgroupRoot, "kubepods"))
}

// cgroupStats reads a cgroup's CPU and memory (nil when it cannot be read).
func (p *Provider) cgroupStats(key string, cg cgroupRef, now time.Time) statsapi.ContainerStats {
	var cs statsapi.ContainerStats
	if usage, ok := p.host.cgroupCPU(cg.cpu); cg.cpu != "" && ok {
		cs.CPU = &statsapi.CPUStats{Time: metav1.NewTime(now), UsageCoreNanoSeconds: &usage,
			UsageNanoCores: p.rate(key, now.UnixNano(), usage, now)}
	}
	if m, ok := p.host.cgroupMemory(cg.mem); cg.mem != "" && ok {
		cs.Memory = &statsapi.MemoryStats{Time: metav1.NewTime(now), UsageBytes: &m.usage, WorkingSetBytes: &m.workingSet,
			RSSBytes: &m.rss, PageFaults: &m.pgfault, MajorPageFaults: &m.pgmajfault}
		if m.limit > 0 && m.limit >= m.workingSet {
			avail := m.limit - m.workingSet
			cs.Memory.AvailableBytes = &avail
		}
		cs.StartTime = metav1.NewTime(p.host.cgroupCreated(cg.mem))
	}
	return cs
}

func (p *Provider) cpuStats(key string, c *runtimeapi.CpuUsage, now time.Time) *statsapi.CPUStats {
	cs := &statsapi.CPUStats{Time: stamp(c.Timestamp, now), UsageCoreNanoSeconds: u64(c.UsageCoreNanoSeconds)}
	if c.UsageNanoCores != nil {
		cs.UsageNanoCores = u64(c.UsageNanoCores)
	} else if c.UsageCoreNanoSeconds != nil {
		at := c.Timestamp
		if at == 0 {
			at = now.UnixNano()
		}
		cs.UsageNanoCores = p.rate(key, at, c.UsageCoreNanoSeconds.Value, now)
	}
	return cs
}

func memoryStats(m *runtimeapi.MemoryUsage, now time.Time) *statsapi.MemoryStats {
	return &statsapi.MemoryStats{Time: stamp(m.Timestamp, now), AvailableBytes: u64(m.AvailableBytes), UsageBytes: u64(m.UsageBytes),
		WorkingSetBytes: u64(m.WorkingSetBytes), RSSBytes: u64(m.RssBytes), PageFaults: u64(m.PageFaults), MajorPageFaults: u64(m.MajorPageFaults)}
}

// networkStats converts the pod's interfaces; the default one (eth0) is listed too when
// the runtime names it only as the default, as cAdvisor lists it.
func networkStats(n *runtimeapi.NetworkUsage) *statsapi.NetworkStats {
	if n == nil {
		return nil
	}
	ns := &statsapi.NetworkStats{Time: metav1.NewTime(time.Unix(0, n.Timestamp))}
	if d := n.GetDefaultInterface(); d != nil {
		ns.InterfaceStats = ifaceStats(d)
	}
	for _, i := range n.GetInterfaces() {
		ns.Interfaces = append(ns.Interfaces, ifaceStats(i))
	}
	if len(ns.Interfaces) == 0 && ns.Name != "" {
		ns.Interfaces = []statsapi.InterfaceStats{ns.InterfaceStats}
	}
	return ns
}

func ifaceStats(i *runtimeapi.NetworkInterfaceUsage) statsapi.InterfaceStats {
	return statsapi.InterfaceStats{Name: i.Name, RxBytes: u64(i.RxBytes), RxErrors: u64(i.RxErrors), TxBytes: u64(i.TxBytes), TxErrors: u64(i.TxErrors)}
}

// defaultInterface is the interface upstream also reports inline (network.DefaultInterfaceName).
const defaultInterface = "eth0"

func hostNetwork(devs []netDev, now time.Time) *statsapi.NetworkStats {
	if len(devs) == 0 {
		return nil
	}
	ns := &statsapi.NetworkStats{Time: metav1.NewTime(now)}
	for _, d := range devs {
		is := statsapi.InterfaceStats{Name: d.name, RxBytes: &d.rxBytes, RxErrors: &d.rxErrors, TxBytes: &d.txBytes, TxErrors: &d.txErrs}
		if d.name == defaultInterface {
			ns.InterfaceStats = is
		}
		ns.Interfaces = append(ns.Interfaces, is)
	}
	return ns
}

func mountFs(cache map[string]*fsInfo, mountpoint string) *fsInfo {
	if mountpoint == "" {
		return nil
	}
	if fi, ok := cache[mountpoint]; ok {
		return fi
	}
	var out *fsInfo
	if fi, err := statfs(mountpoint); err == nil {
		out = &fi
	}
	cache[mountpoint] = out
	return out
}

func withCapacity(fs *statsapi.FsStats, fi *fsInfo) {
	c, a, i, f := fi.capacity, fi.available, fi.inodes, fi.inodesFree
	fs.CapacityBytes, fs.AvailableBytes, fs.Inodes, fs.InodesFree = &c, &a, &i, &f
}

func stamp(ns int64, now time.Time) metav1.Time {
	if ns == 0 {
		return metav1.NewTime(now)
	}
	return metav1.NewTime(time.Unix(0, ns))
}

func u64(v *runtimeapi.UInt64Value) *uint64 {
	if v == nil {
		return nil
	}
	x := v.Value
	return &x
}

// addU64 adds b to a (nil when both are).
func addU64(a, b *uint64) *uint64 {
	if a == nil {
		return copyU64(b)
	}
	if b == nil {
		return a
	}
	x := *a + *b
	return &x
}

func addCPU(a, b *statsapi.CPUStats) *statsapi.CPUStats {
	if b == nil {
		return a
	}
	if a == nil {
		a = &statsapi.CPUStats{}
	}
	return &statsapi.CPUStats{Time: b.Time, UsageNanoCores: addU64(a.UsageNanoCores, b.UsageNanoCores),
		UsageCoreNanoSeconds: addU64(a.UsageCoreNanoSeconds, b.UsageCoreNanoSeconds)}
}

func addMemory(a, b *statsapi.MemoryStats) *statsapi.MemoryStats {
	if b == nil {
		return a
	}
	if a == nil {
		a = &statsapi.MemoryStats{}
	}
	return &statsapi.MemoryStats{Time: b.Time, AvailableBytes: addU64(a.AvailableBytes, b.AvailableBytes),
		UsageBytes: addU64(a.UsageBytes, b.UsageBytes), WorkingSetBytes: addU64(a.WorkingSetBytes, b.WorkingSetBytes),
		RSSBytes: addU64(a.RSSBytes, b.RSSBytes), PageFaults: addU64(a.PageFaults, b.PageFaults),
		MajorPageFaults: addU64(a.MajorPageFaults, b.MajorPageFaults)}
}

func addSwap(a, b *statsapi.SwapStats) *statsapi.SwapStats {
	if b == nil {
		return a
	}
	if a == nil {
		a = &statsapi.SwapStats{}
	}
	return &statsapi.SwapStats{Time: b.Time, SwapUsageBytes: addU64(a.SwapUsageBytes, b.SwapUsageBytes),
		SwapAvailableBytes: addU64(a.SwapAvailableBytes, b.SwapAvailableBytes)}
}
