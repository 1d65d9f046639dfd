// Package stats measures the node, its pods and their containers, and serves what the
// upstream kubelet serves from those measurements: /stats/summary (the
// k8s.io/kubelet/pkg/apis/stats/v1alpha1 Summary), /metrics/resource (what
// metrics-server scrapes) and /metrics/cadvisor (the cAdvisor series dashboards use).
//
// One measurement round reads the runtime (CRI ListContainerStats and
// ListPodSandboxStats, ImageFsInfo for the full summary), the runtime state cache (start
// times, images, which containers are current), the node's root cgroup and /proc, and
// the filesystems (statfs, and a du-style walk of volumes cached for
// volumeStatsAggPeriod). CPU rates (usageNanoCores) the runtime does not give are
// computed against the previous round, as upstream's CRI stats provider does.
package stats

import (
	"context"
	"errors"
	"fmt"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// Runtime is what measurement asks the container runtime (*cri.Client has it).
type Runtime interface {
	ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error)
	ListPodSandboxStats(ctx context.Context, filter *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error)
	ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error)
}

// PodStates is the runtime state cache: each pod's sandboxes and containers as last seen
// (*runtimecache.Cache has it). Reading it costs no runtime call.
type PodStates interface {
	Get(ctx context.Context, uid types.UID) (*cri.PodState, error)
}

// Config is what a Provider needs; New rejects missing fields.
type Config struct {
	Runtime  Runtime
	State    PodStates
	Pods     func() []*v1.Pod // the node's pods (volumes, resources, QoS class)
	NodeName string
	// RootDir is the kubelet's root directory: the node filesystem (nodefs) and the pods'
	// volumes (<root>/pods/<uid>/volumes/<plugin>/<name>, upstream's layout).
	RootDir    string
	PodLogsDir string
	// VolumeStatsAggPeriod is how long a volume's measured usage is reused (upstream's
	// volumeStatsAggPeriod, 1m by default).
	VolumeStatsAggPeriod time.Duration
	// Cgroups name the system containers and pod cgroups: CgroupDriver, CgroupRoot and
	// CgroupsPerQOS as the kubelet's configuration has them; KubeletCgroups and
	// RuntimeCgroups when configured ("" : the kubelet's own cgroup, and the cgroup of
	// the process serving RuntimeEndpoint).
	CgroupDriver, CgroupRoot       string
	CgroupsPerQOS                  bool
	KubeletCgroups, RuntimeCgroups string
	RuntimeEndpoint                string
	// RuntimeName is the runtime's name from CRI Version ("containerd", "cri-o"): it
	// names the cgroups the runtime makes for containers.
	RuntimeName string
	// Persistent measures a pod's persistent volume (a claim's or a CSI volume) as its
	// plugin does, or names the folder whose filesystem is its measure (statfs); nil:
	// none is reported.
	Persistent func(ctx context.Context, uid types.UID, volume string) (fs *statsapi.FsStats, statfsPath string, ok bool)
	// ProcRoot and CgroupFS are /proc and /sys/fs/cgroup ("" for those; tests set them).
	ProcRoot, CgroupFS string
}

// Provider measures; it is safe for concurrent use.
type Provider struct {
	cfg     Config
	host    host
	du      *duCache
	started time.Time // the kubelet system container's start time, as upstream's

	mu  sync.Mutex
	cpu map[string]cpuSample // previous CPU sample by container ID, "pod/<uid>", "node" ...
	// rtCgroup is the runtime process's cgroup, looked up at most every rtCgroupTTL.
	rtCgroup   cgroupRef
	rtCgroupAt time.Time
}

// New checks cfg and returns a Provider.
func New(cfg Config) (*Provider, error) {
	if cfg.Runtime == nil || cfg.State == nil || cfg.Pods == nil || cfg.NodeName == "" || cfg.RootDir == "" || cfg.PodLogsDir == "" {
		return nil, errors.New("stats: Runtime, State, Pods, NodeName, RootDir and PodLogsDir are required")
	}
	if cfg.VolumeStatsAggPeriod <= 0 {
		cfg.VolumeStatsAggPeriod = time.Minute
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = "/"
	}
	return &Provider{cfg: cfg, host: newHost(cfg.ProcRoot, cfg.CgroupFS), du: newDuCache(cfg.VolumeStatsAggPeriod),
		started: time.Now(), cpu: map[string]cpuSample{}}, nil
}

// round is one measurement of the node's pods by the runtime.
type round struct {
	now  time.Time
	pods []*podRound
}

// podRound is one pod as measured: its pod-level stats (nil when the runtime gave none:
// the pod's figures are then summed from its containers) and its current containers.
type podRound struct {
	uid        types.UID
	name, ns   string
	pod        *v1.Pod // nil: not (or no longer) in the kubelet's pod list
	start      time.Time
	sandboxID  string
	sandbox    *runtimeapi.PodSandboxStats
	containers []ctrRound
}

type ctrRound struct {
	stats   *runtimeapi.ContainerStats
	name    string
	image   string
	created time.Time
}

// measure reads the runtime once. Containers that went away between the list and the
// stats (a pod torn down meanwhile) are left out, never an error; only a failed
// ListContainerStats fails the round, as upstream's summary fails then.
func (p *Provider) measure(ctx context.Context) (*round, error) {
	sel := map[string]string{cri.LabelNode: p.cfg.NodeName}
	cstats, err := p.cfg.Runtime.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("failed to list all container stats: %w", err)
	}
	sstats, err := p.cfg.Runtime.ListPodSandboxStats(ctx, &runtimeapi.PodSandboxStatsFilter{LabelSelector: sel})
	if err != nil {
		sstats = p.sandboxStatsOneByOne(ctx, cstats, err)
	}
	r := &round{now: time.Now()}
	byUID := map[types.UID]*podRound{}
	podFor := func(uid types.UID) *podRound {
		if pr := byUID[uid]; pr != nil {
			return pr
		}
		pr := &podRound{uid: uid}
		byUID[uid] = pr
		r.pods = append(r.pods, pr)
		return pr
	}
	for _, s := range sstats {
		md := s.GetAttributes().GetMetadata()
		if md.GetUid() == "" {
			continue
		}
		pr := podFor(types.UID(md.GetUid()))
		pr.sandbox, pr.sandboxID, pr.name, pr.ns = s, s.GetAttributes().GetId(), md.GetName(), md.GetNamespace()
	}
	byCtrPod := map[types.UID][]*runtimeapi.ContainerStats{}
	for _, s := range cstats {
		l := s.GetAttributes().GetLabels()
		if uid := types.UID(l[cri.LabelPodUID]); uid != "" {
			byCtrPod[uid] = append(byCtrPod[uid], s)
			if pr := podFor(uid); pr.name == "" {
				pr.name, pr.ns = l[cri.LabelPodName], l[cri.LabelPodNamespace]
			}
		}
	}
	pods := map[types.UID]*v1.Pod{}
	for _, pod := range p.cfg.Pods() {
		pods[pod.UID] = pod
	}
	for _, pr := range r.pods {
		pr.pod = pods[pr.uid]
		p.fillFromState(ctx, pr, byCtrPod[pr.uid])
	}
	return r, nil
}

// sandboxStatsOneByOne asks for each pod's sandbox stats alone after the list failed:
// containerd fails the whole list for one sandbox it cannot measure (one without a
// cgroup, one being torn down). Pods still without are summed from their containers, as
// upstream's fallback.
func (p *Provider) sandboxStatsOneByOne(ctx context.Context, cstats []*runtimeapi.ContainerStats, listErr error) []*runtimeapi.PodSandboxStats {
	logger := klog.FromContext(ctx)
	logger.V(4).Info("Pod sandbox stats list failed; asking per sandbox", "err", listErr)
	var out []*runtimeapi.PodSandboxStats
	done := map[types.UID]bool{}
	for _, c := range cstats {
		uid := types.UID(c.GetAttributes().GetLabels()[cri.LabelPodUID])
		if uid == "" || done[uid] {
			continue
		}
		done[uid] = true
		st, err := p.cfg.State.Get(ctx, uid)
		if err != nil || st == nil || len(st.Sandboxes) == 0 || !st.Sandboxes[0].Ready {
			continue
		}
		one, err := p.cfg.Runtime.ListPodSandboxStats(ctx, &runtimeapi.PodSandboxStatsFilter{Id: st.Sandboxes[0].ID})
		if err != nil {
			logger.V(4).Info("Pod sandbox stats unavailable", "pod", uid, "err", err)
			continue
		}
		out = append(out, one...)
	}
	return out
}

// fillFromState picks the pod's running containers (upstream leaves exited ones out of
// usage), with their start times and images, from the runtime state cache; and the
// pod's start (its newest sandbox's creation).
func (p *Provider) fillFromState(ctx context.Context, pr *podRound, stats []*runtimeapi.ContainerStats) {
	st, err := p.cfg.State.Get(ctx, pr.uid)
	if err != nil || st == nil {
		st = &cri.PodState{}
	}
	if len(st.Sandboxes) > 0 {
		pr.start = st.Sandboxes[0].CreatedAt
		if pr.sandboxID == "" {
			pr.sandboxID = st.Sandboxes[0].ID
		}
	} else if pr.pod != nil && pr.pod.Status.StartTime != nil {
		pr.start = pr.pod.Status.StartTime.Time
	}
	if pr.name == "" && pr.pod != nil {
		pr.name, pr.ns = pr.pod.Name, pr.pod.Namespace
	}
	running := map[string]cri.Container{}
	for _, c := range st.Containers {
		if c.State == cri.StateRunning {
			running[c.ID] = c
		}
	}
	for _, s := range stats {
		// Not running, gone, or not yet seen by the cache: no usage to report.
		if c, ok := running[s.GetAttributes().GetId()]; ok {
			pr.containers = append(pr.containers, ctrRound{stats: s, name: c.Name, image: c.Image, created: c.CreatedAt})
		}
	}
}

// cpuSample is a CPU counter as last read, and the rate computed from it.
type cpuSample struct {
	at    int64 // ns since the epoch
	usage uint64
	rate  *uint64
	seen  time.Time
}

// minRateWindow: a rate over a shorter interval than this is noise; the previous
// rate is answered instead.
const minRateWindow = time.Second

// rate returns the CPU use in nanocores of the counter key, from the previous sample
// (nil for the first one, or after the counter went back).
func (p *Provider) rate(key string, at int64, usage uint64, now time.Time) *uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev, ok := p.cpu[key]
	switch {
	case ok && at-prev.at < int64(minRateWindow) && at >= prev.at && usage >= prev.usage:
		prev.seen = now
		p.cpu[key] = prev
		return copyU64(prev.rate)
	case ok && usage >= prev.usage:
		r := uint64(float64(usage-prev.usage) / float64(at-prev.at) * 1e9)
		p.cpu[key] = cpuSample{at: at, usage: usage, rate: &r, seen: now}
		return copyU64(&r)
	}
	p.cpu[key] = cpuSample{at: at, usage: usage, seen: now}
	return nil
}

// forget drops the CPU samples of what has not been measured for a while (removed
// containers and pods).
func (p *Provider) forget(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, s := range p.cpu {
		if now.Sub(s.seen) > 10*time.Minute {
			delete(p.cpu, k)
		}
	}
}

func copyU64(v *uint64) *uint64 {
	if v == nil {
		return nil
	}
	x := *v
	return &x
}
