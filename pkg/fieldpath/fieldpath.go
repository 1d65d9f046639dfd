// Package fieldpath renders the downward API: pod fields and container resources as the
// strings env vars and downwardAPI volume files carry, in upstream's formats.
package fieldpath

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"
)

// Pod is a pod with the addresses the runtime gave it (its status may not have them yet).
type Pod struct {
	*v1.Pod
	PodIPs  []string
	HostIPs []string
}

// Value returns the value of a fieldRef path. Whole label and annotation maps (volumes
// only) are rendered as sorted key="value" lines.
func Value(p Pod, path string) (string, error) {
	pod := p.Pod
	if k, ok := strings.CutPrefix(path, "metadata.labels['"); ok && strings.HasSuffix(k, "']") {
		return pod.Labels[strings.TrimSuffix(k, "']")], nil
	}
	if k, ok := strings.CutPrefix(path, "metadata.annotations['"); ok && strings.HasSuffix(k, "']") {
		return pod.Annotations[strings.TrimSuffix(k, "']")], nil
	}
	podIPs := p.PodIPs
	if pod.Spec.HostNetwork {
		podIPs = p.HostIPs
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return FormatMap(pod.Labels), nil
	case "metadata.annotations":
		return FormatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP":
		return first(podIPs), nil
	case "status.podIPs":
		return strings.Join(podIPs, ","), nil
	case "status.hostIP":
		return first(p.HostIPs), nil
	case "status.hostIPs":
		return strings.Join(p.HostIPs, ","), nil
	}
	return "", fmt.Errorf("unsupported fieldPath: %s", path)
}

func first(s []string) string {
	if len(s) > 0 {
		return s[0]
	}
	return ""
}

// FormatMap renders a map as upstream does: one key="value" line per key (value quoted
// Go-style), keys sorted, no trailing newline.
func FormatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	lines := make([]string, len(keys))
	for i, k := range keys {
		lines[i] = k + "=" + strconv.Quote(m[k])
	}
	return strings.Join(lines, "\n")
}

// UnsetLimits is what a container's unset limits read as through the downward API
// (upstream's defaultPodLimitsForDownwardAPI): the node's allocatable amount, or the
// pod-level limit where the pod sets one (pod-level resources).
func UnsetLimits(pod *v1.Pod, allocatable v1.ResourceList) v1.ResourceList {
	if pod.Spec.Resources == nil || len(pod.Spec.Resources.Limits) == 0 {
		return allocatable
	}
	out := allocatable.DeepCopy()
	for _, res := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage} {
		if !resourcehelper.IsSupportedPodLevelResource(res) {
			continue
		}
		if q, ok := pod.Spec.Resources.Limits[res]; ok && !q.IsZero() {
			if _, ok := out[res]; ok {
				out[res] = q.DeepCopy()
			}
		}
	}
	return out
}

// Resource returns a container's request or limit divided by the divisor, rounded up. An
// unset limit is the node's allocatable amount, as upstream; an unset request is 0
// (cpu requests default to the limit, as the apiserver would have defaulted them).
func Resource(c *v1.Container, sel *v1.ResourceFieldSelector, allocatable v1.ResourceList) (string, error) {
	kind, name, ok := strings.Cut(sel.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("unsupported container resource: %s", sel.Resource)
	}
	res := v1.ResourceName(name)
	switch res {
	case v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage:
	default:
		if !strings.HasPrefix(name, "hugepages-") {
			return "", fmt.Errorf("unsupported container resource: %s", sel.Resource)
		}
	}
	var q resource.Quantity
	var set bool
	if kind == "limits" {
		q, set = c.Resources.Limits[res]
		if !set {
			q = allocatable[res]
		}
	} else {
		q, set = c.Resources.Requests[res]
		if !set {
			q = c.Resources.Limits[res]
		}
	}
	div := sel.Divisor
	if div.IsZero() {
		div = resource.MustParse("1")
	}
	if res == v1.ResourceCPU {
		m, d := q.MilliValue(), div.MilliValue()
		if d == 0 {
			return "", fmt.Errorf("invalid divisor %s for %s", div.String(), sel.Resource)
		}
		return strconv.FormatInt(ceilDiv(m, d), 10), nil
	}
	d := div.Value()
	if d == 0 {
		return "", fmt.Errorf("invalid divisor %s for %s", div.String(), sel.Resource)
	}
	return strconv.FormatInt(ceilDiv(q.Value(), d), 10), nil
}

func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}
