package cri

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestVerifyRunAsNonRoot(t *testing.T) {
	yes, no := true, false
	uid := func(v int64) *int64 { return &v }
	pod := func(nonRoot *bool, user *int64) *v1.Pod {
		return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"},
			Spec: v1.PodSpec{SecurityContext: &v1.PodSecurityContext{RunAsNonRoot: nonRoot, RunAsUser: user}}}
	}
	for _, tc := range []struct {
		name      string
		pod       *v1.Pod
		c         v1.Container
		imageUID  *int64
		imageUser string
		want      string
	}{
		{name: "no policy, root image", pod: pod(nil, nil), imageUID: uid(0)},
		{name: "policy off", pod: pod(&no, nil), imageUID: uid(0)},
		{name: "root image", pod: pod(&yes, nil), imageUID: uid(0), want: `container has runAsNonRoot and image will run as root (pod: "p_ns(u)", container: c)`},
		{name: "non-root image", pod: pod(&yes, nil), imageUID: uid(1000)},
		{name: "named image user", pod: pod(&yes, nil), imageUser: "nobody", want: `container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root (pod: "p_ns(u)", container: c)`},
		{name: "runAsUser 0", pod: pod(&yes, uid(0)), imageUID: uid(1000), want: `container's runAsUser breaks non-root policy (pod: "p_ns(u)", container: c)`},
		{name: "runAsUser wins over image", pod: pod(&yes, uid(1000)), imageUID: uid(0)},
		{name: "container overrides pod", pod: pod(&yes, nil), c: v1.Container{SecurityContext: &v1.SecurityContext{RunAsNonRoot: &no}}, imageUID: uid(0)},
		{name: "container user overrides pod", pod: pod(&yes, uid(1000)), c: v1.Container{SecurityContext: &v1.SecurityContext{RunAsUser: uid(0)}},
			want: `container's runAsUser breaks non-root policy (pod: "p_ns(u)", container: c)`},
	} {
		tc.c.Name = "c"
		err := VerifyRunAsNonRoot(tc.pod, &tc.c, tc.imageUID, tc.imageUser)
		if got := ""; err != nil {
			got = err.Error()
			if got != tc.want {
				t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
			}
		} else if tc.want != "" {
			t.Errorf("%s: admitted, want %q", tc.name, tc.want)
		}
	}
}

func TestSeccompAndGroups(t *testing.T) {
	local := "profiles/audit.json"
	fsGroup := int64(2000)
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}, Spec: v1.PodSpec{
		SecurityContext: &v1.PodSecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault},
			SupplementalGroups: []int64{5}, FSGroup: &fsGroup},
		Containers: []v1.Container{{Name: "a"}, {Name: "b", SecurityContext: &v1.SecurityContext{
			SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost, LocalhostProfile: &local}}}}}}
	a, err := ContainerConfig(pod, &pod.Spec.Containers[0], ContainerOptions{SeccompDir: "/var/lib/x/seccomp"})
	if err != nil {
		t.Fatal(err)
	}
	if p := a.Linux.SecurityContext.Seccomp; p.ProfileType != runtimeapi.SecurityProfile_RuntimeDefault {
		t.Errorf("a: seccomp %v, want the pod's RuntimeDefault", p)
	}
	if g := a.Linux.SecurityContext.SupplementalGroups; len(g) != 2 || g[0] != 5 || g[1] != 2000 {
		t.Errorf("supplemental groups %v, want [5 2000] (fsGroup joins them)", g)
	}
	b, _ := ContainerConfig(pod, &pod.Spec.Containers[1], ContainerOptions{SeccompDir: "/var/lib/x/seccomp"})
	if p := b.Linux.SecurityContext.Seccomp; p.ProfileType != runtimeapi.SecurityProfile_Localhost || p.LocalhostRef != "/var/lib/x/seccomp/profiles/audit.json" {
		t.Errorf("b: seccomp %v", p)
	}
	pod.Spec.SecurityContext.SeccompProfile = nil
	if c, _ := ContainerConfig(pod, &pod.Spec.Containers[0], ContainerOptions{}); c.Linux.SecurityContext.Seccomp.ProfileType != runtimeapi.SecurityProfile_Unconfined {
		t.Errorf("unset seccomp must be Unconfined (seccompDefault off)")
	}
}

// Capabilities go to CRI as the API names them: containerd adds the CAP_ prefix itself, so
// a prefixed name would become CAP_CAP_... and be lost (a dropped capability kept).
// A privileged init or app container makes the sandbox privileged (else the runtime
// refuses the container), as upstream.
func TestCapabilitiesAndPrivilegedSandbox(t *testing.T) {
	yes := true
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}, Spec: v1.PodSpec{
		Containers: []v1.Container{{Name: "dns", SecurityContext: &v1.SecurityContext{Capabilities: &v1.Capabilities{
			Add: []v1.Capability{"NET_BIND_SERVICE"}, Drop: []v1.Capability{"ALL", "chown"}}}}}}}
	c, err := ContainerConfig(pod, &pod.Spec.Containers[0], ContainerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	caps := c.Linux.SecurityContext.Capabilities
	if len(caps.AddCapabilities) != 1 || caps.AddCapabilities[0] != "NET_BIND_SERVICE" ||
		len(caps.DropCapabilities) != 2 || caps.DropCapabilities[0] != "ALL" || caps.DropCapabilities[1] != "chown" {
		t.Errorf("capabilities %v, want the API's names unchanged", caps)
	}
	sb, err := SandboxConfig(pod, 0, SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Linux.SecurityContext.Privileged {
		t.Error("sandbox privileged with no privileged container")
	}
	pod.Spec.InitContainers = []v1.Container{{Name: "setup", SecurityContext: &v1.SecurityContext{Privileged: &yes}}}
	if sb, _ = SandboxConfig(pod, 0, SandboxOptions{}); !sb.Linux.SecurityContext.Privileged {
		t.Error("a privileged init container must make the sandbox privileged")
	}
}

// AppArmor (field, pod fallback, deprecated annotation; both CRI forms), SELinux options
// (container over pod) and procMount go to CRI as upstream passes them.
func TestAppArmorSELinuxProcMount(t *testing.T) {
	prof := "my-profile"
	unmasked := v1.UnmaskedProcMount
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u",
		Annotations: map[string]string{v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "old": "localhost/legacy"}},
		Spec: v1.PodSpec{
			SecurityContext: &v1.PodSecurityContext{AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault},
				SELinuxOptions: &v1.SELinuxOptions{Type: "pod_t", Level: "s0:c1"}},
			Containers: []v1.Container{
				{Name: "inherits"},
				{Name: "own", SecurityContext: &v1.SecurityContext{
					AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeLocalhost, LocalhostProfile: &prof},
					SELinuxOptions:  &v1.SELinuxOptions{Type: "own_t"}, ProcMount: &unmasked}},
			}}}
	sc := func(c *v1.Container) *runtimeapi.LinuxContainerSecurityContext {
		cfg, err := ContainerConfig(pod, c, ContainerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Linux.SecurityContext
	}
	a := sc(&pod.Spec.Containers[0])
	if a.Apparmor.GetProfileType() != runtimeapi.SecurityProfile_RuntimeDefault || a.ApparmorProfile != "runtime/default" ||
		a.SelinuxOptions.GetType() != "pod_t" || a.SelinuxOptions.GetLevel() != "s0:c1" || a.MaskedPaths != nil {
		t.Errorf("inherits: apparmor %v %q, selinux %v, masked %v", a.Apparmor, a.ApparmorProfile, a.SelinuxOptions, a.MaskedPaths)
	}
	b := sc(&pod.Spec.Containers[1])
	if b.Apparmor.GetProfileType() != runtimeapi.SecurityProfile_Localhost || b.Apparmor.GetLocalhostRef() != prof || b.ApparmorProfile != "localhost/"+prof ||
		b.SelinuxOptions.GetType() != "own_t" || b.MaskedPaths == nil || len(b.MaskedPaths) != 0 || b.ReadonlyPaths == nil {
		t.Errorf("own: apparmor %v %q, selinux %v, masked %v readonly %v", b.Apparmor, b.ApparmorProfile, b.SelinuxOptions, b.MaskedPaths, b.ReadonlyPaths)
	}
	pod.Spec.SecurityContext = nil
	c := sc(&v1.Container{Name: "old"})
	if c.Apparmor.GetProfileType() != runtimeapi.SecurityProfile_Localhost || c.Apparmor.GetLocalhostRef() != "legacy" || c.SelinuxOptions != nil {
		t.Errorf("annotation: apparmor %v, selinux %v", c.Apparmor, c.SelinuxOptions)
	}
	if d := sc(&v1.Container{Name: "plain"}); d.Apparmor != nil || d.ApparmorProfile != "" {
		t.Errorf("nothing asked: apparmor %v %q, want the runtime's default", d.Apparmor, d.ApparmorProfile)
	}
}

// TestSupplementalGroupsPolicy: the pod's policy reaches the sandbox and every container,
// as upstream passes it; unset is Merge.
func TestSupplementalGroupsPolicy(t *testing.T) {
	strict := v1.SupplementalGroupsPolicyStrict
	for _, tc := range []struct {
		name string
		psc  *v1.PodSecurityContext
		want runtimeapi.SupplementalGroupsPolicy
	}{
		{"unset", nil, runtimeapi.SupplementalGroupsPolicy_Merge},
		{"strict", &v1.PodSecurityContext{SupplementalGroupsPolicy: &strict, SupplementalGroups: []int64{4000}}, runtimeapi.SupplementalGroupsPolicy_Strict},
	} {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"},
			Spec: v1.PodSpec{SecurityContext: tc.psc, Containers: []v1.Container{{Name: "c", Image: "busybox"}}}}
		sb, err := SandboxConfig(pod, 0, SandboxOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := sb.GetLinux().GetSecurityContext().GetSupplementalGroupsPolicy(); got != tc.want {
			t.Errorf("%s: sandbox policy %v, want %v", tc.name, got, tc.want)
		}
		if got := securityContext(pod, &pod.Spec.Containers[0], nil).GetSupplementalGroupsPolicy(); got != tc.want {
			t.Errorf("%s: container policy %v, want %v", tc.name, got, tc.want)
		}
	}
}
