package kubelet

import (
	"context"

	"github.com/minikubelet/minikubelet/pkg/kubelet/stats"
)

// measurement: the stats provider, measuring for the kubelet API's /stats/summary,
// /metrics/resource and /metrics/cadvisor and for image garbage collection: the runtime
// through pkg/cri, pods' state from the runtime cache.
func (p *parts) measurement(context.Context) error {
	k := &p.cfg.Kubelet
	var err error
	p.stats, err = stats.New(stats.Config{
		Runtime: p.rt, State: p.state, Pods: podsWithStatus(p.workers, p.statusMgr), NodeName: p.nodeName,
		RootDir: p.cfg.RootDir, PodLogsDir: k.PodLogsDir, VolumeStatsAggPeriod: k.VolumeStatsAggPeriod.Duration,
		CgroupDriver: k.CgroupDriver, CgroupRoot: k.CgroupRoot, CgroupsPerQOS: k.CgroupsPerQOS == nil || *k.CgroupsPerQOS,
		KubeletCgroups: k.KubeletCgroups, RuntimeEndpoint: k.ContainerRuntimeEndpoint, RuntimeName: p.runtimeName,
		Persistent: p.volumes.PersistentStats,
	})
	return err
}
