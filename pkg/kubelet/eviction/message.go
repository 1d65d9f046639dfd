package eviction

import (
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Reason is the evicted pod's status reason and the event's.
const Reason = "Evicted"

// Upstream's keys of the Evicted event's annotations.
const (
	OffendingContainersKey      = "offending_containers"
	OffendingContainersUsageKey = "offending_containers_usage"
	OffendingPodKey             = "offending_pod"
	OffendingPodUsageKey        = "offending_pod_usage"
	StarvedResourceKey          = "starved_resource"
)

// message is upstream's evictionMessage: the starved resource, the threshold and what
// was available, and each container (and with pod-level resources the pod) using more
// memory or ephemeral storage than it requests; the annotations name them.
func message(res v1.ResourceName, pod *v1.Pod, stats statsFunc, ts []Threshold, met []int, obs observations) (string, map[string]string) {
	msg := fmt.Sprintf("The node was low on resource: %v. ", res)
	for _, i := range met {
		if signalResource[ts[i].Signal] != res {
			continue
		}
		if o, ok := obs[ts[i].Signal]; ok {
			msg += fmt.Sprintf("Threshold quantity: %v, available: %v. ", ts[i].Value.Of(o.capacity), o.available)
		}
		break
	}
	ann := map[string]string{}
	ps, ok := stats(pod)
	if !ok {
		return msg, ann
	}
	if res == v1.ResourceMemory && resourcehelper.IsPodLevelResourcesSet(pod) {
		if req, ok := pod.Spec.Resources.Requests[res]; ok && ps.Memory != nil {
			use := memoryUsage(ps)
			msg += fmt.Sprintf("Pod %s was using %s, request is %s, has larger consumption of %v. ", pod.Name, use.String(), req.String(), res)
			ann[OffendingPodKey], ann[OffendingPodUsageKey] = pod.Name, use.String()
		}
	}
	containers := append(append([]v1.Container{}, pod.Spec.Containers...), pod.Spec.InitContainers...)
	var names, usages []string
	for _, cs := range ps.Containers {
		for _, c := range containers {
			if c.Name != cs.Name {
				continue
			}
			req := c.Resources.Requests[res]
			if use := containerUsage(cs, res); use != nil && use.Cmp(req) > 0 {
				msg += fmt.Sprintf("Container %s was using %s, request is %s, has larger consumption of %v. ", c.Name, use.String(), req.String(), res)
				names, usages = append(names, c.Name), append(usages, use.String())
			}
			break
		}
	}
	ann[OffendingContainersKey] = strings.Join(names, ",")
	ann[OffendingContainersUsageKey] = strings.Join(usages, ",")
	ann[StarvedResourceKey] = string(res)
	return msg, ann
}

// containerUsage is a container's memory working set, or its writable layer and logs.
func containerUsage(cs statsapi.ContainerStats, res v1.ResourceName) *resource.Quantity {
	switch res {
	case v1.ResourceEphemeralStorage:
		if cs.Rootfs != nil && cs.Rootfs.UsedBytes != nil && cs.Logs != nil && cs.Logs.UsedBytes != nil {
			return resource.NewQuantity(int64(*cs.Rootfs.UsedBytes+*cs.Logs.UsedBytes), resource.BinarySI)
		}
	case v1.ResourceMemory:
		if cs.Memory != nil && cs.Memory.WorkingSetBytes != nil {
			return resource.NewQuantity(int64(*cs.Memory.WorkingSetBytes), resource.BinarySI)
		}
	}
	return nil
}

// Admission message: the node's pressure conditions.
func conditionMessage(conds []v1.NodeConditionType) string {
	return fmt.Sprintf("The node had condition: %v. ", conds)
}
