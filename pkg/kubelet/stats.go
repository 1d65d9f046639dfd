package kubelet

import (
	"github.com/minikubelet/minikubelet/pkg/kubelet/stats"
)

// statsProvider measures for the kubelet API's /stats/summary, /metrics/resource and
// /metrics/cadvisor: the runtime through pkg/cri, pods' state from the runtime cache.
func (p *parts) statsProvider() (*stats.Provider, error) {
	k := &p.cfg.Kubelet
	return stats.New(stats.Config{
		Runtime: p.rt, State: p.state, Pods: podsWithStatus(p.workers, p.statusMgr), NodeName: p.nodeName,
		RootDir: p.cfg.RootDir, PodLogsDir: k.PodLogsDir, VolumeStatsAggPeriod: k.VolumeStatsAggPeriod.Duration,
		CgroupDriver: k.CgroupDriver, CgroupRoot: k.CgroupRoot, CgroupsPerQOS: k.CgroupsPerQOS == nil || *k.CgroupsPerQOS,
		KubeletCgroups: k.KubeletCgroups, RuntimeEndpoint: k.ContainerRuntimeEndpoint, RuntimeName: p.runtimeName,
	})
}
