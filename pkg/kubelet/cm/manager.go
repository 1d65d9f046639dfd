package cm

import (
	"context"
	"fmt"
	"os"
	"path"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/manager"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// ManagerConfig is what the manager needs.
type ManagerConfig struct {
	Driver string // cri.CgroupfsDriver or cri.SystemdDriver
	Root   string // cgroupRoot
	// Allocatable is what the node allocatable cgroup (kubepods) is limited to: capacity
	// less kubeReserved and systemReserved with enforceNodeAllocatable [pods], else
	// capacity (upstream's getNodeAllocatableInternalAbsolute).
	Allocatable v1.ResourceList
	Pod         PodOptions
	// ActivePods are the pods the node runs, for the burstable cgroup's shares.
	ActivePods func() []*v1.Pod
	// PodUse tells Run's orphan sweep what a pod found in the cgroup tree is to the node
	// (nil: no sweep).
	PodUse func(types.UID) PodUse
}

// Manager keeps the node's QoS cgroups and makes the pods' cgroups, through the cgroup
// library upstream uses (opencontainers/cgroups: cgroupfs v1 and v2, systemd slices).
type Manager struct {
	cfg  ManagerConfig
	tree tree
	mu   sync.Mutex // serialises QoS updates
	// qosWritten: the settings last written to each QoS cgroup, by its name (mu held).
	qosWritten map[string]Config
}

// tree is the machine's cgroup hierarchy as the manager uses it; unit tests give a fake
// one (a cgroup v2 tree in a directory) to check what is written where on either version.
type tree struct {
	unified bool // cgroup v2
	hugetlb bool // the hugetlb controller can be set
	// open gives the library's manager for the cgroup at name (a cgroupfs path or an
	// expanded systemd slice path) as c describes it.
	open func(name string, c *cgroups.Cgroup) (cgroups.Manager, error)
	// roots are the hierarchies' mount points, where the cgroups at name are found.
	roots func() ([]string, error)
}

// machineTree is this machine's hierarchy, the library choosing the driver.
func machineTree() tree {
	return tree{
		unified: cgroups.IsCgroup2UnifiedMode(),
		hugetlb: hugetlbSupported(),
		open:    func(_ string, c *cgroups.Cgroup) (cgroups.Manager, error) { return manager.New(c) },
		roots:   mountPoints,
	}
}

// mountPoints are the machine's cgroup hierarchies: the unified one, or each v1
// hierarchy once (several controllers may share one).
func mountPoints() ([]string, error) {
	mounts, err := cgroups.GetCgroupMounts(false)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, mt := range mounts {
		if !slices.Contains(out, mt.Mountpoint) {
			out = append(out, mt.Mountpoint)
		}
	}
	return out, nil
}

// NewManager returns a manager; Start makes the QoS cgroups.
func NewManager(cfg ManagerConfig) *Manager {
	if cfg.ActivePods == nil {
		cfg.ActivePods = func() []*v1.Pod { return nil }
	}
	return &Manager{cfg: cfg, tree: machineTree(), qosWritten: map[string]Config{}}
}

// Start makes (or updates) the node allocatable cgroup and the burstable and besteffort
// cgroups under it, as upstream does at start-up before any pod.
func (m *Manager) Start() error {
	if err := m.set(cri.QOSCgroupPath(m.cfg.Driver, m.cfg.Root, ""), ForNode(m.cfg.Allocatable)); err != nil {
		return fmt.Errorf("node allocatable cgroup: %w", err)
	}
	return m.updateQOS(true)
}

// Run updates the QoS cgroups every minute (upstream's periodic update) and sweeps the
// orphaned pod cgroups every housekeeping period until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	qos := time.NewTicker(time.Minute)
	defer qos.Stop()
	sweep := time.NewTicker(housekeepingPeriod)
	defer sweep.Stop()
	if m.cfg.PodUse == nil {
		sweep.Stop()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-qos.C:
			if err := m.updateQOS(true); err != nil {
				klog.FromContext(ctx).Error(err, "Updating the QoS cgroups failed")
			}
		case <-sweep.C:
			m.SweepOrphans(ctx, m.cfg.PodUse)
		}
	}
}

// UpdateQOS sets the burstable and besteffort cgroups from the active pods, leaving one
// whose settings are what this manager last wrote there: a pod's start or removal
// changes them only for its own QoS class, and rarely (a BestEffort pod never), while
// writing both costs two cgroups in every hierarchy on the pod's start path. Start and
// the periodic update write them regardless, repairing changes from outside.
func (m *Manager) UpdateQOS() error { return m.updateQOS(false) }

func (m *Manager) updateQOS(force bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	burstable, bestEffort := ForQOS(m.cfg.ActivePods(), m.cfg.Pod.HugePageSizes)
	for _, q := range []struct {
		class v1.PodQOSClass
		c     Config
	}{{v1.PodQOSBurstable, burstable}, {v1.PodQOSBestEffort, bestEffort}} {
		name := cri.QOSCgroupPath(m.cfg.Driver, m.cfg.Root, q.class)
		if last, ok := m.qosWritten[name]; ok && !force && reflect.DeepEqual(last, q.c) {
			continue
		}
		delete(m.qosWritten, name) // unknown until written
		if err := m.set(name, q.c); err != nil {
			return fmt.Errorf("%s cgroup: %w", strings.ToLower(string(q.class)), err)
		}
		m.qosWritten[name] = q.c
	}
	return nil
}

// EnsurePod makes the pod's cgroup with its limits unless it exists (upstream's
// EnsureExists: an existing pod cgroup is left as it is), then updates the QoS cgroups
// for the pod's requests. Upstream's error wording.
func (m *Manager) EnsurePod(pod *v1.Pod) error {
	name := cri.PodCgroupParent(m.cfg.Driver, m.cfg.Root, pod)
	mgr, err := m.tree.open(name, m.libConfig(name, nil))
	if err != nil {
		return fmt.Errorf("failed to create container for %s : %v", name, err)
	}
	if !exists(mgr) {
		if err := m.set(name, ForPod(pod, m.cfg.Pod)); err != nil {
			return fmt.Errorf("failed to create container for %s : %v", name, err)
		}
	}
	return m.UpdateQOS()
}

// RemovePod removes the pod's cgroup once its containers are gone (upstream's pod
// container manager Destroy): the library removes its directories in every hierarchy,
// sub-cgroups first (CRI-O leaves conmon cgroups there), or, with systemd, stops the
// pod's slice, which systemd keeps after its last scope ended. Then the QoS cgroups are
// updated without the pod's requests. Upstream's error wording.
func (m *Manager) RemovePod(pod *v1.Pod) error {
	name := cri.PodCgroupParent(m.cfg.Driver, m.cfg.Root, pod)
	mgr, err := m.tree.open(name, m.libConfig(name, nil))
	if err == nil {
		err = mgr.Destroy()
	}
	if err != nil {
		return fmt.Errorf("unable to destroy cgroup paths for cgroup %s : %v", name, err)
	}
	return m.UpdateQOS()
}

// exists: the cgroup is there in each controller the pod cgroup's settings need (as
// upstream's cgroup manager checks), not just the one the library looks at.
func exists(mgr cgroups.Manager) bool {
	for _, ctrl := range []string{"cpu", "memory", "pids"} {
		p := mgr.Path(ctrl)
		if p == "" {
			continue // controller not mounted
		}
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// set makes the cgroup at name (a cgroupfs path or an expanded systemd slice path) and
// writes c into it.
func (m *Manager) set(name string, c Config) error {
	lc := m.libConfig(name, m.toResources(c))
	mgr, err := m.tree.open(name, lc)
	if err != nil {
		return err
	}
	if err := mgr.Apply(-1); err != nil {
		return err
	}
	return mgr.Set(lc.Resources)
}

// libConfig is the library's description of cgroup name: a path for cgroupfs; for
// systemd the slice and its parent slice, which systemd needs.
func (m *Manager) libConfig(name string, r *cgroups.Resources) *cgroups.Cgroup {
	if r == nil {
		r = &cgroups.Resources{SkipDevices: true}
	}
	c := &cgroups.Cgroup{Resources: r, Systemd: m.cfg.Driver == cri.SystemdDriver}
	if !c.Systemd {
		c.Path = name
		return c
	}
	dir, base := path.Split(name)
	if dir == "/" {
		c.Parent = "-.slice"
	} else {
		c.Parent = path.Base(dir)
	}
	c.Name = base
	return c
}

// toResources is c in the library's terms, shares as cpu.weight on cgroup v2, devices
// left alone (the runtime sets each container's).
func (m *Manager) toResources(c Config) *cgroups.Resources {
	r := &cgroups.Resources{SkipDevices: true, SkipFreezeOnSet: true}
	if c.Memory != nil {
		r.Memory = *c.Memory
	}
	if c.CPUShares != nil {
		if m.tree.unified {
			r.CpuWeight = CPUWeight(*c.CPUShares)
		} else {
			r.CpuShares = *c.CPUShares
		}
	}
	if c.CPUQuota != nil {
		r.CpuQuota = *c.CPUQuota
	}
	if c.CPUPeriod != nil {
		r.CpuPeriod = *c.CPUPeriod
	}
	if c.PidsLimit != nil {
		p := *c.PidsLimit
		r.PidsLimit = &p
	}
	if m.tree.hugetlb {
		for size, limit := range c.HugePageLimit {
			r.HugetlbLimit = append(r.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: size, Limit: uint64(limit)})
		}
	}
	return r
}

// CPUWeight is the cgroup v2 cpu.weight for CFS shares as upstream's kubelet converts
// them for pod and QoS cgroups: linear from [2, 262144] onto [1, 10000] (1024 shares:
// 39). The library's own conversion (runc's, for containers) is a different curve
// (1024: 100), so it is not used here.
func CPUWeight(shares uint64) uint64 {
	if shares >= maxShares {
		return 10000
	}
	if shares < MinShares {
		shares = MinShares
	}
	return 1 + (shares-MinShares)*9999/(maxShares-MinShares)
}

// hugetlbSupported: the hugetlb controller is there to set (mounted on cgroup v1, enabled
// on v2). As upstream, huge page limits are skipped without it: on a hybrid machine it
// may sit on the unified hierarchy the v1 driver does not use.
func hugetlbSupported() bool {
	if cgroups.IsCgroup2UnifiedMode() {
		b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		return err == nil && slices.Contains(strings.Fields(string(b)), "hugetlb")
	}
	_, err := cgroups.FindCgroupMountpoint("", "hugetlb")
	return err == nil
}

// PidMax is the machine's PID capacity as upstream counts it: the lower of
// kernel.pid_max and kernel.threads-max; 0 if unreadable.
func PidMax() int64 {
	var out int64
	for _, f := range []string{"/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"} {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0
		}
		if out == 0 || n < out {
			out = n
		}
	}
	return out
}

// ResizePod sets resource name of the pod's existing cgroup to the pod's (resized)
// values: for cpu its shares, quota and period, for memory its limit; the other
// resource's files are not touched.
func (m *Manager) ResizePod(pod *v1.Pod, name v1.ResourceName) error {
	c := ForPod(pod, m.cfg.Pod)
	var only Config
	switch name {
	case v1.ResourceCPU:
		only.CPUShares, only.CPUQuota, only.CPUPeriod = c.CPUShares, c.CPUQuota, c.CPUPeriod
	case v1.ResourceMemory:
		if c.Memory == nil {
			return nil // no pod memory limit to change
		}
		only.Memory = c.Memory
	default:
		return fmt.Errorf("resource %s cannot be resized", name)
	}
	cgName := cri.PodCgroupParent(m.cfg.Driver, m.cfg.Root, pod)
	lc := m.libConfig(cgName, m.toResources(only))
	mgr, err := m.tree.open(cgName, lc)
	if err != nil {
		return fmt.Errorf("failed to set %s of pod cgroup %s: %w", name, cgName, err)
	}
	if err := mgr.Set(lc.Resources); err != nil {
		return fmt.Errorf("failed to set %s of pod cgroup %s: %w", name, cgName, err)
	}
	return nil
}

// PodLimit is the limit of name the pod's cgroup gets for pod (cpu: the CFS quota, memory:
// bytes); -1: none.
func (m *Manager) PodLimit(pod *v1.Pod, name v1.ResourceName) int64 {
	c := ForPod(pod, m.cfg.Pod)
	switch {
	case name == v1.ResourceCPU && c.CPUQuota != nil && *c.CPUQuota > 0:
		return *c.CPUQuota
	case name == v1.ResourceMemory && c.Memory != nil && *c.Memory > 0:
		return *c.Memory
	}
	return -1
}
