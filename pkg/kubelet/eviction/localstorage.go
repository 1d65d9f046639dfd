package eviction

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// overLocalLimit is upstream's local storage isolation: a pod is evicted, whatever the
// node's state, when a disk-backed emptyDir holds more than its sizeLimit, when its
// ephemeral storage (layers, logs, local volumes) exceeds the sum of its containers'
// limits, or when one container's logs (and writable layer, when it shares the node's
// filesystem) exceed the container's limit. It returns upstream's message ("": none) and
// the signal upstream counts the eviction under.
func overLocalLimit(pod *v1.Pod, ps statsapi.PodStats, dedicatedImageFs bool) (msg, signal string) {
	used := map[string]*resource.Quantity{}
	for _, v := range ps.VolumeStats {
		if v.UsedBytes != nil {
			used[v.Name] = resource.NewQuantity(int64(*v.UsedBytes), resource.BinarySI)
		}
	}
	for _, v := range pod.Spec.Volumes {
		ed := v.EmptyDir
		if ed == nil || ed.Medium == v1.StorageMediumMemory || ed.SizeLimit == nil || ed.SizeLimit.Sign() != 1 {
			continue // the kernel bounds a memory-backed emptyDir itself
		}
		if u := used[v.Name]; u != nil && u.Cmp(*ed.SizeLimit) > 0 {
			return fmt.Sprintf("Usage of EmptyDir volume %q exceeds the limit %q. ", v.Name, ed.SizeLimit.String()), "emptydirfs.limit"
		}
	}
	if limit, ok := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})[v1.ResourceEphemeralStorage]; ok {
		total := resource.Quantity{}
		if ps.EphemeralStorage != nil && ps.EphemeralStorage.UsedBytes != nil {
			total = *resource.NewQuantity(int64(*ps.EphemeralStorage.UsedBytes), resource.BinarySI)
		}
		if total.Cmp(limit) > 0 {
			return fmt.Sprintf("Pod ephemeral local storage usage exceeds the total limit of containers %s. ", limit.String()), "ephemeralpodfs.limit"
		}
	}
	limits := map[string]*resource.Quantity{}
	for _, c := range pod.Spec.Containers {
		if l := c.Resources.Limits.StorageEphemeral(); l.Value() != 0 {
			limits[c.Name] = l
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			if l := c.Resources.Limits.StorageEphemeral(); l.Value() != 0 {
				limits[c.Name] = l
			}
		}
	}
	for _, cs := range ps.Containers {
		limit, ok := limits[cs.Name]
		if !ok {
			continue
		}
		var n uint64
		if cs.Logs != nil && cs.Logs.UsedBytes != nil {
			n += *cs.Logs.UsedBytes
		}
		if !dedicatedImageFs && cs.Rootfs != nil && cs.Rootfs.UsedBytes != nil {
			n += *cs.Rootfs.UsedBytes
		}
		if limit.Cmp(*resource.NewQuantity(int64(n), resource.BinarySI)) < 0 {
			return fmt.Sprintf("Container %s exceeded its local ephemeral storage limit %q. ", cs.Name, limit.String()), "ephemeralcontainerfs.limit"
		}
	}
	return "", ""
}
