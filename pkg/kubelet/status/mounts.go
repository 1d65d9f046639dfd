package status

import v1 "k8s.io/api/core/v1"

// volumeMountStatuses are a container's volumeMounts as upstream reports them
// (RecursiveReadOnlyMounts, on by default): name, path and readOnly; a read-only mount also
// says whether it is recursively read-only, which needs runtime support containerd 1.6
// lacks, so Disabled (upstream logs an error for a mount asking for Enabled and reports
// Disabled too).
func volumeMountStatuses(c *v1.Container) []v1.VolumeMountStatus {
	var out []v1.VolumeMountStatus
	for _, m := range c.VolumeMounts {
		s := v1.VolumeMountStatus{Name: m.Name, MountPath: m.MountPath, ReadOnly: m.ReadOnly}
		if m.ReadOnly {
			rro := v1.RecursiveReadOnlyDisabled
			s.RecursiveReadOnly = &rro
		}
		out = append(out, s)
	}
	return out
}
