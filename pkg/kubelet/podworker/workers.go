// Package podworker runs one goroutine per pod UID. Each sync observes the pod's runtime
// state, decides with the pure computeActions, acts through pkg/cri, and hands the derived
// status to the status manager.
package podworker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/allocation"
	"github.com/minikubelet/minikubelet/pkg/kubelet/dns"
	"github.com/minikubelet/minikubelet/pkg/kubelet/images"
	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
	"github.com/minikubelet/minikubelet/pkg/kubelet/userns"
	"github.com/minikubelet/minikubelet/pkg/probe"
	"github.com/minikubelet/minikubelet/pkg/volume"
)

// Config is what the workers need; New rejects missing fields.
type Config struct {
	NodeName string
	HostIPs  []string
	// Allocatable is the node's allocatable resources (the downward API's unset limits).
	Allocatable v1.ResourceList
	Runtime     *cri.Client
	// RuntimeName is the runtime's name (CRI Version), the scheme of container IDs.
	RuntimeName string
	// State is the runtime's state of the node's pods (runtimecache.Cache), read instead
	// of listing the runtime.
	State      StateReader
	Status     *status.Manager
	Recorder   record.EventRecorder
	Client     kubernetes.Interface
	RootDir    string // pods/<uid>/... files live here
	PodLogsDir string
	// ContainerLogsDir holds the log shippers' symlinks (/var/log/containers); empty: none.
	ContainerLogsDir string
	// DNS is the node's DNS setup: pods' resolv.conf, hostnames and /etc/hosts.
	DNS dns.Node
	// CgroupsPerQOS and CgroupRoot place pods in their own cgroups (upstream's layout),
	// named for CgroupDriver ("cgroupfs" or "systemd").
	CgroupsPerQOS bool
	CgroupRoot    string
	CgroupDriver  string
	// Cgroups makes a pod's cgroup with its limits before its sandbox and keeps the QoS
	// cgroups in step (nil: the runtime makes the pod cgroups, without limits).
	Cgroups PodCgroups
	// Node gives the node new pods are admitted against: its labels (node affinity,
	// nodeSelector), NoExecute taints, allocatable and features (nil: a node of NodeName
	// with the OS label, Allocatable and MaxPods). Admission also GETs the node through
	// Client when node affinity is a pod's only failure.
	Node func() (*v1.Node, error)
	// Pressure is the eviction manager's admission, asked first as upstream's handlers
	// are (nil: none); it returns the reason and message of a refusal.
	Pressure func(pod *v1.Pod) (reason, message string)
	// MaxPods and AllowedUnsafeSysctls drive admission of new pods (0: no limit).
	MaxPods              int
	AllowedUnsafeSysctls []string
	// AppArmorEnabled: the host enforces AppArmor (else pods asking for a profile are
	// refused, as upstream).
	AppArmorEnabled bool
	// HugePageSizes are the machine's huge page sizes (cri.ContainerOptions).
	HugePageSizes []string
	// MemoryCapacity is the machine's memory in bytes (containers' oom_score_adj).
	MemoryCapacity int64
	// Services lists services for service-link env vars (nil: none).
	Services       corelisters.ServiceLister
	ServicesSynced func() bool
	// Volumes prepares and tears down the pods' volumes.
	Volumes *volume.Manager
	// Probes runs the containers' probes (nil: probes are not run).
	Probes *probe.Manager
	// ResyncPeriod bounds how long a pod goes without a sync (default 10s).
	ResyncPeriod time.Duration
	// Tracer traces each sync as a "syncPod" span (nil: not traced).
	Tracer trace.Tracer
	// Network holds pods off the host network back while the runtime's network is not
	// ready (nil: never).
	Network Network
	// Allocation keeps what each pod was granted and given (in-place resize; nil: an
	// in-memory one).
	Allocation *allocation.Manager
	// Userns gives `hostUsers: false` pods their user namespace (nil: such pods are
	// refused at sandbox creation, as on a runtime without user namespaces).
	Userns *userns.Manager
}

// StateReader gives a pod's runtime state, reflecting every mutation made through Runtime.
type StateReader interface {
	Get(ctx context.Context, uid types.UID) (*cri.PodState, error)
}

// Workers owns the per-pod goroutines.
type Workers struct {
	cfg         Config
	crashBack   *flowcontrol.Backoff
	images      *images.Puller
	mu          sync.Mutex
	pods        map[types.UID]*worker
	ctx         context.Context
	wg          sync.WaitGroup
	started     chan struct{}
	startedOnce sync.Once
	// resizeMu makes one resize's fit check and allocation at a time.
	resizeMu sync.Mutex
}

// Upstream kubelet back-off: containers 10s doubling to 300s.
const (
	backOffInitial = 10 * time.Second
	backOffMax     = 300 * time.Second
)

// New checks cfg.
func New(cfg Config) (*Workers, error) {
	if cfg.NodeName == "" || cfg.Runtime == nil || cfg.State == nil || cfg.Status == nil || cfg.Recorder == nil || cfg.RootDir == "" || cfg.PodLogsDir == "" || cfg.Volumes == nil {
		return nil, fmt.Errorf("podworker: NodeName, Runtime, State, Status, Recorder, RootDir, PodLogsDir and Volumes are required")
	}
	if cfg.ResyncPeriod <= 0 {
		cfg.ResyncPeriod = 10 * time.Second
	}
	if cfg.CgroupDriver == "" {
		cfg.CgroupDriver = cri.CgroupfsDriver
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = "/"
	}
	if cfg.Allocation == nil {
		cfg.Allocation, _ = allocation.NewManager("")
	}
	w := &Workers{cfg: cfg, pods: map[types.UID]*worker{}, started: make(chan struct{}),
		crashBack: flowcontrol.NewBackOff(backOffInitial, backOffMax),
	}
	w.images = images.New(images.Config{Runtime: cfg.Runtime, Client: cfg.Client, Event: w.event})
	if cfg.Network != nil {
		cfg.Network.OnReady(w.wakeAll)
	}
	return w, nil
}

// Run lets workers run until ctx ends, then waits for them. Pods keep running: stopping
// minikubelet never stops containers.
func (w *Workers) Run(ctx context.Context) {
	w.mu.Lock()
	w.ctx = ctx
	w.mu.Unlock()
	w.startedOnce.Do(func() { close(w.started) })
	gc := time.NewTicker(time.Minute)
	defer gc.Stop()
	for {
		select {
		case <-ctx.Done():
			w.wg.Wait()
			return
		case <-gc.C:
			w.crashBack.GC()
			w.images.GC()
		}
	}
}

// worker is one pod's goroutine and its inbox.
type worker struct {
	uid  types.UID
	wake chan struct{} // cap 1: coalesces any number of updates into one sync

	mu      sync.Mutex
	pod     *v1.Pod // newest spec from the source
	removed bool    // gone from the API: kill and forget
	// admitted: the node took the pod (or found it already running); rejected: it
	// refused it at admission, so nothing of it ever runs.
	admitted, rejected bool
	// waiting holds why containers are not running, as the last sync found.
	waiting map[string]status.Waiting
	// collected is when the pod's dead containers were last collected (the worker's
	// goroutine alone uses it).
	collected time.Time
	// evict is the eviction manager's order to stop the pod (nil: none).
	evict *eviction
	// collectNow: collect dead containers in the next sync, whenever the last was.
	collectNow bool
	// released: the finished pod's volumes are torn down and its cgroup removed.
	released bool
}

// goneFromAPI: the pod's removal from the API has been delivered.
func (wk *worker) goneFromAPI() bool {
	wk.mu.Lock()
	defer wk.mu.Unlock()
	return wk.removed
}

func (wk *worker) kick() {
	select {
	case wk.wake <- struct{}{}:
	default:
	}
}

// Update delivers the newest version of a pod bound to this node.
func (w *Workers) Update(pod *v1.Pod) {
	wk := w.get(pod.UID, true)
	wk.mu.Lock()
	wk.pod = pod
	wk.mu.Unlock()
	wk.kick()
}

// Remove tells the pod's worker that the pod is gone from the API.
func (w *Workers) Remove(pod *v1.Pod) {
	wk := w.get(pod.UID, true)
	wk.mu.Lock()
	if wk.pod == nil {
		wk.pod = pod
	}
	wk.removed = true
	wk.mu.Unlock()
	wk.kick()
}

// Wake makes the pod's worker sync now (a runtime event for it arrived).
func (w *Workers) Wake(uid types.UID) {
	if wk := w.get(uid, false); wk != nil {
		wk.kick()
	}
}

// Known reports whether a worker exists for uid.
func (w *Workers) Known(uid types.UID) bool { return w.get(uid, false) != nil }

// HoldsCgroup reports whether a worker has the pod and may still need its cgroup: not
// once it finished and released it.
func (w *Workers) HoldsCgroup(uid types.UID) bool {
	wk := w.get(uid, false)
	if wk == nil {
		return false
	}
	wk.mu.Lock()
	defer wk.mu.Unlock()
	return !wk.released
}

func (w *Workers) get(uid types.UID, create bool) *worker {
	<-w.started
	w.mu.Lock()
	defer w.mu.Unlock()
	wk := w.pods[uid]
	if wk == nil && create && w.ctx.Err() == nil {
		wk = &worker{uid: uid, wake: make(chan struct{}, 1), waiting: map[string]status.Waiting{}}
		w.pods[uid] = wk
		w.wg.Go(func() { w.loop(w.ctx, wk) })
	}
	return wk
}

func (w *Workers) loop(ctx context.Context, wk *worker) {
	logger := klog.FromContext(ctx).WithValues("podUID", wk.uid)
	ctx = klog.NewContext(ctx, logger)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		select {
		case <-ctx.Done():
			return
		case <-wk.wake:
		case <-timer.C:
		}
		next, done := w.sync(ctx, wk)
		if done {
			w.mu.Lock()
			delete(w.pods, wk.uid)
			w.mu.Unlock()
			return
		}
		if next <= 0 || next > w.cfg.ResyncPeriod {
			next = w.cfg.ResyncPeriod
		}
		timer.Stop()
		select {
		case <-timer.C:
		default:
		}
		timer.Reset(next)
	}
}
