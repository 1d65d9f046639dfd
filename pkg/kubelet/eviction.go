package kubelet

import (
	"context"
	"slices"
	"sync/atomic"

	v1 "k8s.io/api/core/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/minikubelet/minikubelet/pkg/kubelet/eviction"
	"github.com/minikubelet/minikubelet/pkg/kubelet/node"
)

// evictionRef holds the eviction manager once built: the node controller and admission
// are built before it and ask it through here.
type evictionRef struct {
	atomic.Pointer[eviction.Manager]
}

// pressure is the node's pressure conditions as the eviction manager last found them.
func (r *evictionRef) pressure() node.Pressure {
	m := r.Load()
	if m == nil {
		return node.Pressure{}
	}
	c := m.Conditions()
	return node.Pressure{Memory: slices.Contains(c, v1.NodeMemoryPressure), Disk: slices.Contains(c, v1.NodeDiskPressure),
		PID: slices.Contains(c, v1.NodePIDPressure)}
}

// admit is the eviction manager's admission ("" = admitted).
func (r *evictionRef) admit(pod *v1.Pod) (reason, msg string) {
	if m := r.Load(); m != nil {
		return m.Admit(pod)
	}
	return "", ""
}

// evictionManager: the signals watched against the eviction thresholds, dead containers
// and unused images reclaimed under disk pressure, and pods evicted when that is not
// enough.
func (p *parts) evictionManager(context.Context) error {
	k := &p.cfg.Kubelet
	m, err := eviction.New(eviction.Config{
		Thresholds: p.thresholds, PressureTransitionPeriod: k.EvictionPressureTransitionPeriod.Duration,
		MaxPodGracePeriodSeconds: int64(k.EvictionMaxPodGracePeriod),
		LocalStorageIsolation:    k.LocalStorageCapacityIsolation == nil || *k.LocalStorageCapacityIsolation,
		Summary:                  func(ctx context.Context) (*statsapi.Summary, error) { return p.stats.Summary(ctx, false) },
		DedicatedImageFs:         p.stats.DedicatedImageFs,
		ActivePods:               p.workers.ActivePods,
		Evictor:                  p.workers,
		DeleteUnusedContainers:   p.workers.DeleteUnusedContainers,
		DeleteUnusedImages:       p.imageGCMgr.DeleteUnusedImages,
		Recorder:                 p.recorder, Node: p.nodeRef(),
	})
	if err != nil {
		return err
	}
	p.evictions.Store(m)
	p.add("eviction manager", m.Run)
	return nil
}
