package cri

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/kubelet/dns"
)

// PodLogDir is where a pod's container logs live: <podLogsDir>/<ns>_<name>_<uid>.
func PodLogDir(podLogsDir string, pod *v1.Pod) string {
	return filepath.Join(podLogsDir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
}

// SandboxOptions are the node-level inputs to a sandbox config.
type SandboxOptions struct {
	NodeName   string
	PodLogsDir string
	// DNS is the pod's resolver config (dns.Node.PodDNS); nil gives the runtime an empty
	// one. Only sandbox creation needs it.
	DNS *runtimeapi.DNSConfig
	// ClusterDomain roots the pod's FQDN (hostname + subdomain, setHostnameAsFQDN).
	ClusterDomain string
	// CgroupsPerQOS puts each pod in its own cgroup under CgroupRoot, as upstream's
	// layout: <root>/kubepods[/burstable|/besteffort]/pod<uid>, named for CgroupDriver
	// ("cgroupfs", the default, or "systemd").
	CgroupsPerQOS bool
	CgroupRoot    string
	CgroupDriver  string
	// Userns is the pod's user namespace (userns.Manager.PodNamespace): NODE, or POD with
	// the pod's ID mappings for `hostUsers: false`. Containers must be given the same
	// (ContainerOptions.Userns): the runtime refuses a container whose user namespace
	// differs from its sandbox's.
	Userns *runtimeapi.UserNamespace
}

// SandboxConfig translates a pod into the CRI sandbox config for the given attempt.
func SandboxConfig(pod *v1.Pod, attempt uint32, o SandboxOptions) (*runtimeapi.PodSandboxConfig, error) {
	if pod.Name == "" || pod.Namespace == "" || pod.UID == "" {
		return nil, fmt.Errorf("pod needs name, namespace and uid")
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt},
		LogDirectory: PodLogDir(o.PodLogsDir, pod),
		Labels:       map[string]string{},
		Annotations:  map[string]string{},
		DnsConfig:    o.DNS,
	}
	if cfg.DnsConfig == nil {
		cfg.DnsConfig = &runtimeapi.DNSConfig{}
	}
	for k, v := range pod.Labels {
		cfg.Labels[k] = v
	}
	for k, v := range pod.Annotations {
		cfg.Annotations[k] = v
	}
	cfg.Labels[LabelPodName], cfg.Labels[LabelPodNamespace], cfg.Labels[LabelPodUID] = pod.Name, pod.Namespace, string(pod.UID)
	cfg.Labels[LabelNode] = o.NodeName
	host, err := dns.SandboxHostname(pod, o.ClusterDomain)
	if err != nil {
		return nil, err
	}
	cfg.Hostname = host
	for _, c := range allContainers(pod) {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			cfg.PortMappings = append(cfg.PortMappings, &runtimeapi.PortMapping{
				Protocol: protocol(p.Protocol), ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP})
		}
	}
	sc := &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: namespaces(pod, o.Userns), Privileged: hasPrivileged(pod)}
	sc.RunAsUser, sc.RunAsGroup, sc.SupplementalGroups = podIdentity(pod)
	sc.SupplementalGroupsPolicy = groupsPolicy(pod)
	// The pause container has no Localhost profile folder; it gets the runtime's default.
	if sc.Seccomp = seccompProfile(pod, nil, ""); sc.Seccomp.ProfileType == runtimeapi.SecurityProfile_Localhost {
		sc.Seccomp = &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	}
	cfg.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: sc, Sysctls: map[string]string{}}
	if o.CgroupsPerQOS {
		cfg.Linux.CgroupParent = PodCgroupParent(o.CgroupDriver, o.CgroupRoot, pod)
	}
	if psc := pod.Spec.SecurityContext; psc != nil {
		for _, s := range psc.Sysctls {
			cfg.Linux.Sysctls[s.Name] = s.Value
		}
	}
	return cfg, nil
}

// hasPrivileged: a sandbox must be privileged for any of its containers to be (the
// runtime refuses "no privileged container allowed in sandbox"), as upstream decides it.
func hasPrivileged(pod *v1.Pod) bool {
	for _, c := range allContainers(pod) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			return true
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if sc := c.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
			return true
		}
	}
	return false
}

// namespaces is the pod's namespaces as upstream's NamespacesForPod: network, IPC and PID
// from the spec, the user namespace as given (nil: not set).
func namespaces(pod *v1.Pod, userns *runtimeapi.UserNamespace) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD,
		UsernsOptions: userns}
	if pod.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		ns.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	return ns
}

func protocol(p v1.Protocol) runtimeapi.Protocol {
	switch p {
	case v1.ProtocolUDP:
		return runtimeapi.Protocol_UDP
	case v1.ProtocolSCTP:
		return runtimeapi.Protocol_SCTP
	}
	return runtimeapi.Protocol_TCP
}

func allContainers(pod *v1.Pod) []v1.Container {
	return append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
}

// ContainerHash identifies what of a container's spec cannot change while it runs: as
// upstream, its name and image (resources are resized in place; the API lets nothing
// else of a container change). A changed hash means the container must be recreated.
func ContainerHash(c *v1.Container) string {
	b, _ := json.Marshal(map[string]string{"name": c.Name, "image": c.Image})
	h := fnv.New32a()
	h.Write(b)
	return strconv.FormatUint(uint64(h.Sum32()), 16)
}

// ContainerOptions are the per-start inputs to a container config.
type ContainerOptions struct {
	NodeName     string
	RestartCount int
	Init         bool
	ImageRef     string                 // resolved image to run
	Env          []*runtimeapi.KeyValue // resolved environment (see ResolveEnv)
	Mounts       []*runtimeapi.Mount
	// Devices are the container's raw block volumes (volumeDevices).
	Devices []*runtimeapi.Device
	// SeccompDir holds Localhost seccomp profiles (<root-dir>/seccomp upstream).
	SeccompDir string
	// TargetID is the container whose process namespace an ephemeral container
	// joins (its targetContainerName); "" for every other container.
	TargetID string
	// Userns is the pod's user namespace, the same as its sandbox's (SandboxOptions.Userns).
	Userns *runtimeapi.UserNamespace
	// HugePageSizes are the machine's huge page sizes as runc names them ("2MB", "1GB"):
	// each gets a hugetlb limit, 0 unless the pod asks for pages of that size.
	HugePageSizes []string
	// MemoryCapacity is the machine's memory in bytes, for a Burstable container's
	// oom_score_adj (0: unknown, 999).
	MemoryCapacity int64
}

// ContainerConfig translates one container of pod into the CRI container config.
func ContainerConfig(pod *v1.Pod, c *v1.Container, o ContainerOptions) (*runtimeapi.ContainerConfig, error) {
	if c.Name == "" {
		return nil, fmt.Errorf("container needs a name")
	}
	env := map[string]string{}
	for _, kv := range o.Env {
		env[kv.Key] = string(kv.Value)
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	expand := func(in []string) []string {
		if in == nil {
			return nil
		}
		out := make([]string, len(in))
		for i, s := range in {
			out[i] = Expand(s, lookup)
		}
		return out
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: uint32(o.RestartCount)},
		Image:      &runtimeapi.ImageSpec{Image: o.ImageRef, UserSpecifiedImage: c.Image},
		Command:    expand(c.Command),
		Args:       expand(c.Args),
		WorkingDir: c.WorkingDir,
		Envs:       o.Env,
		Mounts:     o.Mounts,
		Devices:    o.Devices,
		LogPath:    filepath.Join(c.Name, strconv.Itoa(o.RestartCount)+".log"),
		Stdin:      c.Stdin,
		StdinOnce:  c.StdinOnce,
		Tty:        c.TTY,
		Labels: map[string]string{
			LabelContainer: c.Name, LabelPodName: pod.Name, LabelPodNamespace: pod.Namespace,
			LabelPodUID: string(pod.UID), LabelNode: o.NodeName,
		},
		Annotations: map[string]string{
			AnnotationRestartCount:  strconv.Itoa(o.RestartCount),
			AnnotationHash:          ContainerHash(c),
			AnnotationTermMsgPath:   c.TerminationMessagePath,
			AnnotationTermMsgPolicy: string(c.TerminationMessagePolicy),
			// Recorded so a pod whose spec is gone (deleted while minikubelet was down) is
			// still stopped with its own grace period, as upstream does.
			AnnotationGracePeriod: strconv.FormatInt(specGrace(pod), 10),
		},
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       resources(pod, c, o.HugePageSizes, o.MemoryCapacity),
			SecurityContext: securityContext(pod, c, o.Userns),
		},
	}
	idmapMounts(cfg.Mounts, o.Userns)
	cfg.Linux.SecurityContext.Seccomp = seccompProfile(pod, c, o.SeccompDir)
	targetPID(cfg.Linux.SecurityContext.NamespaceOptions, o.TargetID)
	if o.Init {
		cfg.Annotations[AnnotationInit] = "true"
	}
	return cfg, nil
}

// idmapMounts gives every mount of a container in its own user namespace the pod's ID
// mappings, as upstream (kuberuntime_container_linux.go
// applyPlatformSpecificContainerConfig): the runtime then makes ID-mapped mounts, so the
// volumes' files, owned by host IDs, show as the IDs inside the pod; no ownership is
// changed on disk. A NODE namespace has no mappings, which leaves the mounts as they are.
func idmapMounts(mounts []*runtimeapi.Mount, userns *runtimeapi.UserNamespace) {
	if userns == nil {
		return
	}
	for _, m := range mounts {
		m.UidMappings, m.GidMappings = userns.Uids, userns.Gids
	}
}

// targetPID puts an ephemeral container in its target's process namespace, as upstream:
// only when the container would otherwise get its own (a hostPID or shared-namespace pod
// already sees the target's processes).
func targetPID(ns *runtimeapi.NamespaceOption, targetID string) {
	if targetID != "" && ns.Pid == runtimeapi.NamespaceMode_CONTAINER {
		ns.Pid, ns.TargetId = runtimeapi.NamespaceMode_TARGET, targetID
	}
}

func specGrace(pod *v1.Pod) int64 {
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return *g
	}
	return v1.DefaultTerminationGracePeriodSeconds
}

// ContainerResources are the Linux resources container c of pod runs with (also those an
// in-place resize applies).
func ContainerResources(pod *v1.Pod, c *v1.Container, o ContainerOptions) *runtimeapi.LinuxContainerResources {
	return resources(pod, c, o.HugePageSizes, o.MemoryCapacity)
}

// resources maps requests and limits as the upstream kubelet does: CPU shares from the
// request (minimum 2), CFS quota from the limit over a 100ms period, the memory limit,
// huge pages.
func resources(pod *v1.Pod, c *v1.Container, pageSizes []string, memCapacity int64) *runtimeapi.LinuxContainerResources {
	r := &runtimeapi.LinuxContainerResources{CpuShares: 2}
	if q, ok := c.Resources.Requests[v1.ResourceCPU]; ok {
		r.CpuShares = max(q.MilliValue()*1024/1000, 2)
	} else if q, ok := c.Resources.Limits[v1.ResourceCPU]; ok {
		r.CpuShares = max(q.MilliValue()*1024/1000, 2) // the request defaults to the limit
	}
	if q, ok := c.Resources.Limits[v1.ResourceCPU]; ok {
		r.CpuPeriod = 100000
		r.CpuQuota = max(q.MilliValue()*100, 1000)
	}
	if q, ok := c.Resources.Limits[v1.ResourceMemory]; ok {
		r.MemoryLimitInBytes = q.Value()
	}
	r.OomScoreAdj = oomScoreAdj(pod, c, memCapacity)
	r.HugepageLimits = hugepageLimits(pod, c, pageSizes)
	return r
}

// hugepageLimits is upstream's: every page size of the machine is limited, to 0 unless
// the container's limits (else the pod-level ones) name pages of that size, so a pod
// uses no huge pages it did not ask for.
func hugepageLimits(pod *v1.Pod, c *v1.Container, pageSizes []string) []*runtimeapi.HugepageLimit {
	asked := map[string]uint64{}
	var podLimits v1.ResourceList
	if pod.Spec.Resources != nil {
		podLimits = pod.Spec.Resources.Limits
	}
	for _, limits := range []v1.ResourceList{podLimits, c.Resources.Limits} { // the container's win
		for name, q := range limits {
			if size, ok := HugePageSize(name); ok {
				asked[size] = uint64(max(q.Value(), 0))
			}
		}
	}
	var out []*runtimeapi.HugepageLimit
	for _, size := range pageSizes {
		out = append(out, &runtimeapi.HugepageLimit{PageSize: size, Limit: asked[size]})
	}
	return out
}

// HugePageSize names the page size of a hugepages-<size> resource as runc does ("2MB"
// for hugepages-2Mi): the size in the largest binary unit that divides it.
func HugePageSize(name v1.ResourceName) (string, bool) {
	q, err := resource.ParseQuantity(strings.TrimPrefix(string(name), v1.ResourceHugePagesPrefix))
	if !strings.HasPrefix(string(name), v1.ResourceHugePagesPrefix) || err != nil || q.Value() <= 0 {
		return "", false
	}
	size, unit := q.Value(), 0
	units := []string{"B", "KB", "MB", "GB", "TB", "PB"}
	for size%1024 == 0 && unit < len(units)-1 {
		size /= 1024
		unit++
	}
	return strconv.FormatInt(size, 10) + units[unit], true
}

// oomScoreAdj is upstream's GetContainerOOMScoreAdjust. Guaranteed and node-critical pods
// would get -997 upstream; this machine kind cannot set negative values (no
// CAP_SYS_RESOURCE), and containerd's restrict_oom_score_adj clamps them anyway, so they
// get the lowest non-negative score. BestEffort gets 1000; Burstable 1000 less its memory
// request's share of the machine in thousandths, kept within 3..999 (a sidecar no higher
// than the pod's smallest regular container). memCapacity 0 (unknown) gives 999.
func oomScoreAdj(pod *v1.Pod, c *v1.Container, memCapacity int64) int64 {
	if nodeCritical(pod) {
		return 0
	}
	switch QOSClass(pod) {
	case v1.PodQOSGuaranteed:
		return 0
	case v1.PodQOSBestEffort:
		return 1000
	}
	if memCapacity <= 0 {
		return 999
	}
	score := 1000 - 1000*c.Resources.Requests.Memory().Value()/memCapacity
	if isSidecar(pod, c) {
		score = min(score, 1000-1000*minRegularMemory(pod)/memCapacity)
	}
	switch {
	case score < 3:
		return 3
	case score == 1000:
		return 999
	}
	return score
}

// nodeCritical is upstream's IsNodeCriticalPod: priority class system-node-critical on a
// critical pod (static, mirror, or of system-critical priority).
func nodeCritical(pod *v1.Pod) bool {
	if pod.Spec.PriorityClassName != "system-node-critical" {
		return false
	}
	src := pod.Annotations["kubernetes.io/config.source"]
	_, mirror := pod.Annotations["kubernetes.io/config.mirror"]
	return (src != "" && src != "api") || mirror || (pod.Spec.Priority != nil && *pod.Spec.Priority >= 2000000000)
}

// isSidecar: c is an init container that keeps running (restartPolicy Always).
func isSidecar(pod *v1.Pod, c *v1.Container) bool {
	for i := range pod.Spec.InitContainers {
		ic := &pod.Spec.InitContainers[i]
		if ic.Name == c.Name {
			return ic.RestartPolicy != nil && *ic.RestartPolicy == v1.ContainerRestartPolicyAlways
		}
	}
	return false
}

// minRegularMemory is the smallest memory request of the pod's regular containers.
func minRegularMemory(pod *v1.Pod) int64 {
	var least int64 = -1
	for i := range pod.Spec.Containers {
		if m := pod.Spec.Containers[i].Resources.Requests.Memory().Value(); least < 0 || m < least {
			least = m
		}
	}
	return max(least, 0)
}

// groupsPolicy is the pod's supplementalGroupsPolicy for CRI (sandbox and containers, as
// upstream): Strict leaves out the groups the image's /etc/group gives the user. A runtime
// that cannot honour it says so in its features, and admission refuses Strict pods there.
func groupsPolicy(pod *v1.Pod) runtimeapi.SupplementalGroupsPolicy {
	if sc := pod.Spec.SecurityContext; sc != nil && sc.SupplementalGroupsPolicy != nil &&
		*sc.SupplementalGroupsPolicy == v1.SupplementalGroupsPolicyStrict {
		return runtimeapi.SupplementalGroupsPolicy_Strict
	}
	return runtimeapi.SupplementalGroupsPolicy_Merge
}

// podIdentity is the pod-level user, group and supplemental groups (nil when unset).
func podIdentity(pod *v1.Pod) (user, group *runtimeapi.Int64Value, groups []int64) {
	psc := pod.Spec.SecurityContext
	if psc == nil {
		return nil, nil, nil
	}
	if psc.RunAsUser != nil {
		user = &runtimeapi.Int64Value{Value: *psc.RunAsUser}
	}
	if psc.RunAsGroup != nil {
		group = &runtimeapi.Int64Value{Value: *psc.RunAsGroup}
	}
	groups = append(groups, psc.SupplementalGroups...)
	// The fsGroup owns the pod's volumes; its processes join it, as upstream.
	if psc.FSGroup != nil {
		groups = append(groups, *psc.FSGroup)
	}
	return user, group, groups
}

// appArmor is the container's AppArmor profile as upstream passes it: the container's
// field, else the pod's, else upstream's deprecated annotation; both the profile and the
// older string form (runtimes before the field read only that). Unset: the runtime's
// default.
func appArmor(pod *v1.Pod, c *v1.Container) (*runtimeapi.SecurityProfile, string) {
	var p *v1.AppArmorProfile
	if c.SecurityContext != nil && c.SecurityContext.AppArmorProfile != nil {
		p = c.SecurityContext.AppArmorProfile
	} else if pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.AppArmorProfile != nil {
		p = pod.Spec.SecurityContext.AppArmorProfile
	} else if a, ok := pod.Annotations[v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix+c.Name]; ok {
		switch {
		case a == v1.DeprecatedAppArmorBetaProfileRuntimeDefault:
			p = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}
		case a == v1.DeprecatedAppArmorBetaProfileNameUnconfined:
			p = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}
		case strings.HasPrefix(a, v1.DeprecatedAppArmorBetaProfileNamePrefix):
			name := strings.TrimPrefix(a, v1.DeprecatedAppArmorBetaProfileNamePrefix)
			p = &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: &name}
		}
	}
	if p == nil {
		return nil, ""
	}
	switch p.Type {
	case v1.AppArmorProfileTypeUnconfined:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}, v1.DeprecatedAppArmorBetaProfileNameUnconfined
	case v1.AppArmorProfileTypeLocalhost:
		name := ""
		if p.LocalhostProfile != nil {
			name = *p.LocalhostProfile
		}
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: name},
			v1.DeprecatedAppArmorBetaProfileNamePrefix + name
	default:
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}, v1.DeprecatedAppArmorBetaProfileRuntimeDefault
	}
}

// seLinux is the container's SELinux options, else the pod's.
func seLinux(pod *v1.Pod, c *v1.Container) *runtimeapi.SELinuxOption {
	o := (*v1.SELinuxOptions)(nil)
	if c.SecurityContext != nil && c.SecurityContext.SELinuxOptions != nil {
		o = c.SecurityContext.SELinuxOptions
	} else if pod.Spec.SecurityContext != nil {
		o = pod.Spec.SecurityContext.SELinuxOptions
	}
	if o == nil {
		return nil
	}
	return &runtimeapi.SELinuxOption{User: o.User, Role: o.Role, Type: o.Type, Level: o.Level}
}

func securityContext(pod *v1.Pod, c *v1.Container, userns *runtimeapi.UserNamespace) *runtimeapi.LinuxContainerSecurityContext {
	sc := &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: namespaces(pod, userns)}
	sc.RunAsUser, sc.RunAsGroup, sc.SupplementalGroups = podIdentity(pod)
	sc.SupplementalGroupsPolicy = groupsPolicy(pod)
	sc.Apparmor, sc.ApparmorProfile = appArmor(pod, c)
	sc.SelinuxOptions = seLinux(pod, c)
	csc := c.SecurityContext
	if csc == nil {
		return sc
	}
	if csc.ProcMount != nil && *csc.ProcMount == v1.UnmaskedProcMount {
		// Nothing masked or read-only in /proc (an empty list, not none: none means the
		// runtime's defaults).
		sc.MaskedPaths, sc.ReadonlyPaths = []string{}, []string{}
	}
	if csc.RunAsUser != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *csc.RunAsUser}
	}
	if csc.RunAsGroup != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *csc.RunAsGroup}
	}
	if csc.Privileged != nil {
		sc.Privileged = *csc.Privileged
	}
	if csc.ReadOnlyRootFilesystem != nil {
		sc.ReadonlyRootfs = *csc.ReadOnlyRootFilesystem
	}
	if csc.AllowPrivilegeEscalation != nil {
		sc.NoNewPrivs = !*csc.AllowPrivilegeEscalation
	}
	if caps := csc.Capabilities; caps != nil {
		sc.Capabilities = &runtimeapi.Capability{}
		for _, a := range caps.Add {
			sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(a))
		}
		for _, d := range caps.Drop {
			sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(d))
		}
	}
	return sc
}
