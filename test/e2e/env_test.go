package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// TestEnvSources: every env source reaches the container, read back over HTTP; a missing
// required key keeps the container in CreateContainerConfigError with upstream's message.
func TestEnvSources(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "env-sources")
	watchNode(ctx, t, k.NodeName, isReady)
	name := "env-" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	if _, err := bed.Client.CoreV1().ConfigMaps("default").Create(ctx, &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name},
		Data: map[string]string{"color": "blue", "size": "L"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := bed.Client.CoreV1().Secrets("default").Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name},
		Data: map[string][]byte{"token": []byte("s3cret")}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.CoreV1().ConfigMaps("default").Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = bed.Client.CoreV1().Secrets("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	ref := v1.LocalObjectReference{Name: name}
	pod := testAppPod(k.NodeName, "serve", "--http=:8080")
	pod.Labels = map[string]string{"tier": "web"}
	c := &pod.Spec.Containers[0]
	c.Resources.Limits = v1.ResourceList{v1.ResourceMemory: resource.MustParse("96Mi")}
	c.EnvFrom = []v1.EnvFromSource{{Prefix: "CM_", ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: ref}},
		{SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Optional: ptr(true)}}}
	field := func(p string) *v1.EnvVarSource {
		return &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: p}}
	}
	c.Env = []v1.EnvVar{
		{Name: "CM_size", Value: "overridden"},
		{Name: "TOKEN", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: ref, Key: "token"}}},
		{Name: "COLOR", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: ref, Key: "color"}}},
		{Name: "MAYBE", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: ref, Key: "nope", Optional: ptr(true)}}},
		{Name: "MEM_MI", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
		{Name: "POD_IP", ValueFrom: field("status.podIP")},
		{Name: "HOST_IP", ValueFrom: field("status.hostIP")},
		{Name: "NODE", ValueFrom: field("spec.nodeName")},
		{Name: "SA", ValueFrom: field("spec.serviceAccountName")},
		{Name: "TIER", ValueFrom: field("metadata.labels['tier']")},
		{Name: "UID", ValueFrom: field("metadata.uid")},
		{Name: "COMBINED", Value: "$(COLOR)-$(TIER)-$$(COLOR)"},
	}
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	env := get(t, p.Status.PodIP+":8080", "/env")
	kube, err := bed.Client.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"CM_color=blue", "CM_size=overridden", "TOKEN=s3cret", "COLOR=blue", "MEM_MI=96",
		"POD_IP=" + p.Status.PodIP, "HOST_IP=" + testbed.NodeIP, "NODE=" + k.NodeName, "SA=default", "TIER=web",
		"UID=" + string(p.UID), "COMBINED=blue-web-$(COLOR)",
		// Service links: the master service always, as upstream.
		"KUBERNETES_SERVICE_HOST=" + kube.Spec.ClusterIP, "KUBERNETES_SERVICE_PORT=443",
		"KUBERNETES_PORT_443_TCP=tcp://" + kube.Spec.ClusterIP + ":443",
	} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("env lacks %q:\n%s", want, env)
		}
	}
	if strings.Contains(env, "MAYBE=") {
		t.Errorf("optional missing key must leave MAYBE unset:\n%s", env)
	}

	bad := newPod(k.NodeName, "sleep", "3600")
	bad.Spec.Containers[0].Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: ref, Key: "missing"}}}}
	watchPod(ctx, t, createPod(ctx, t, bad), "CreateContainerConfigError", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CreateContainerConfigError" &&
			cs.State.Waiting.Message == "couldn't find key missing in ConfigMap default/"+name
	})
}

// TestEnvSecurityAndAdmission: runAsNonRoot against a root image, an unsafe sysctl
// (rejected at admission, as upstream), seccomp RuntimeDefault and fsGroup/supplemental
// groups as the container sees them.
func TestEnvSecurityAndAdmission(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "env-security")
	watchNode(ctx, t, k.NodeName, isReady)

	nonRoot := newPod(k.NodeName, "sleep", "3600")
	nonRoot.Spec.SecurityContext = &v1.PodSecurityContext{RunAsNonRoot: ptr(true)}
	p1 := createPod(ctx, t, nonRoot)

	unsafe := newPod(k.NodeName, "sleep", "3600")
	unsafe.Spec.SecurityContext = &v1.PodSecurityContext{Sysctls: []v1.Sysctl{{Name: "kernel.msgmax", Value: "65536"}}}
	p2 := createPod(ctx, t, unsafe)

	sec := testAppPod(k.NodeName, "serve", "--http=:8080")
	sec.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: ptr(int64(1000)), RunAsGroup: ptr(int64(3000)),
		FSGroup: ptr(int64(2000)), SupplementalGroups: []int64{4000},
		SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault},
		Sysctls:        []v1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "80"}}}
	sec.Spec.Volumes = []v1.Volume{{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	sec.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	p3 := watchPod(ctx, t, createPod(ctx, t, sec), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })

	watchPod(ctx, t, p1, "CreateContainerConfigError", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CreateContainerConfigError" &&
			cs.State.Waiting.Message == `container has runAsNonRoot and image will run as root (pod: "`+p1.Name+`_default(`+string(p1.UID)+`)", container: main)`
	})
	got := watchPod(ctx, t, p2, "rejected", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if got.Status.Reason != "SysctlForbidden" || got.Status.Message != `Pod was rejected: forbidden sysctl: "kernel.msgmax" not allowlisted` {
		t.Errorf("rejection: reason %q message %q", got.Status.Reason, got.Status.Message)
	}
	waitEvent(ctx, t, p2, "SysctlForbidden", `forbidden sysctl: "kernel.msgmax" not allowlisted`)

	status := get(t, p3.Status.PodIP+":8080", "/file?path=/proc/self/status")
	for _, want := range []string{"Seccomp:\t2", "Uid:\t1000\t1000\t1000\t1000", "Gid:\t3000\t3000\t3000\t3000"} {
		if !strings.Contains(status, want) {
			t.Errorf("/proc/self/status lacks %q:\n%s", want, status)
		}
	}
	groups := ""
	for _, line := range strings.Split(status, "\n") {
		if g, ok := strings.CutPrefix(line, "Groups:\t"); ok {
			groups = " " + strings.TrimSpace(g) + " "
		}
	}
	if !strings.Contains(groups, " 2000 ") || !strings.Contains(groups, " 4000 ") {
		t.Errorf("Groups %q lack fsGroup 2000 and supplemental 4000", groups)
	}
	if v := strings.TrimSpace(get(t, p3.Status.PodIP+":8080", "/file?path=/proc/sys/net/ipv4/ip_unprivileged_port_start")); v != "80" {
		t.Errorf("safe sysctl not applied: %q", v)
	}
}

// TestEnvMemoryLimitOOMKilled: a container that outgrows its memory limit is killed by
// the kernel and reported terminated with reason OOMKilled and exit code 137.
func TestEnvMemoryLimitOOMKilled(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "env-oom")
	watchNode(ctx, t, k.NodeName, isReady)
	pod := newPod(k.NodeName, "sh", "-c", "tail /dev/zero") // tail buffers the endless line
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	pod.Spec.Containers[0].Resources.Limits = v1.ResourceList{v1.ResourceMemory: resource.MustParse("32Mi")}
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Failed", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	term := containerStatus(p, "main").State.Terminated
	if term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Errorf("terminated = %+v, want OOMKilled with exit code 137", term)
	}
}
