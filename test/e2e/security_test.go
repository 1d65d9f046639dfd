package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/sys/mountinfo"
	authnv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/pkg/kubelet/podworker"
)

// mountType is the filesystem type mounted at path on the host ("" if none).
func mountType(t *testing.T, path string) string {
	mounts, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) == 0 {
		return ""
	}
	return mounts[len(mounts)-1].FSType
}

// TestReliabilityKubeletAPISecurity: the kubelet API refuses anonymous exec, attach,
// port-forward and logs (401) and a service account without nodes/proxy (403), and never
// hands out the runtime's streaming URL; secret volumes are tmpfs with 0644 files (or
// their mode) and are gone with the pod; a subPath symlink in a hostPath volume cannot
// reach outside the volume.
func TestReliabilityKubeletAPISecurity(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "rel-security")
	watchNode(ctx, t, k.NodeName, isReady)

	sec := &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec-" + fmt.Sprint(time.Now().UnixNano()%100000), Namespace: "default"},
		Data: map[string][]byte{"token": []byte("s3cret"), "key": []byte("k")}}
	if _, err := bed.Client.CoreV1().Secrets("default").Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.CoreV1().Secrets("default").Delete(context.Background(), sec.Name, metav1.DeleteOptions{})
	})
	host := t.TempDir()
	if err := os.Symlink("/etc", filepath.Join(host, "escape")); err != nil {
		t.Fatal(err)
	}
	pod := newPod(k.NodeName, "sh", "-c", "echo escape:; ls /mnt/escape; echo end; sleep 3600")
	pod.Spec.Volumes = []v1.Volume{
		{Name: "all", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: sec.Name}}},
		{Name: "item", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: sec.Name,
			Items: []v1.KeyToPath{{Key: "key", Path: "key", Mode: ptr(int32(0o400))}}}}},
		{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: host}}},
	}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{
		{Name: "all", MountPath: "/sec"}, {Name: "item", MountPath: "/item"},
		{Name: "host", MountPath: "/mnt/escape", SubPath: "escape"},
	}
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running", containerRunning("main"))

	// The API: anonymous 401, a token without nodes/proxy 403, and no streaming URL either way.
	tr, err := bed.Client.CoreV1().ServiceAccounts("default").CreateToken(ctx, "default",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	base := "/" + p.Namespace + "/" + p.Name
	for _, path := range []string{
		"/exec" + base + "/main?command=id&stdout=1", "/attach" + base + "/main?stdout=1",
		"/portForward" + base, "/containerLogs" + base + "/main", "/run" + base + "/main",
	} {
		for _, method := range []string{"GET", "POST"} {
			for _, who := range []struct {
				token string
				code  int
			}{{"", 401}, {tr.Status.Token, 403}} {
				code, hdr, body := kubeletRequest(ctx, t, k, kubeletTLS(t, "", ""), method, path, who.token)
				if code != who.code || hdr.Get("Location") != "" || strings.Contains(body, "127.0.0.1") {
					t.Errorf("%s %s (token %t): %d %q location %q, want %d and no runtime URL", method, path, who.token != "", code, body, hdr.Get("Location"), who.code)
				}
				if who.code == 403 && !strings.Contains(body, "subresource(s)=[proxy]") {
					t.Errorf("%s %s: 403 body %q does not name nodes/proxy", method, path, body)
				}
			}
		}
	}
	crt, key, err := bed.PKI.Issue("e2e-kubelet-admin", "e2e-kubelet-admin", []string{"system:masters"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs string
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(logs, "end"); time.Sleep(200 * time.Millisecond) {
		var code int
		if code, logs = kubeletGet(ctx, t, k, "/containerLogs"+base+"/main", crt, key, ""); code != 200 || time.Now().After(deadline) {
			t.Fatalf("admin: logs %d %q", code, logs)
		}
	}

	// The symlink pointed at the host's /etc; the container sees a folder inside the volume.
	if strings.Contains(logs, "passwd") || strings.Contains(logs, "hostname") {
		t.Errorf("subPath symlink escaped the hostPath volume: the container lists %q", logs)
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatal(err)
	}

	// Secret volumes: tmpfs on the node, files 0644 unless their item says otherwise.
	dir := func(vol string) string {
		return filepath.Join(k.RootDir, "pods", string(p.UID), "volumes", "kubernetes.io~secret", vol)
	}
	for _, vol := range []string{"all", "item"} {
		if typ := mountType(t, dir(vol)); typ != "tmpfs" {
			t.Errorf("secret volume %s is %q, want tmpfs", vol, typ)
		}
	}
	for file, mode := range map[string]os.FileMode{"all/token": 0o644, "all/key": 0o644, "item/key": 0o400} {
		vol, name, _ := strings.Cut(file, "/")
		fi, err := os.Stat(filepath.Join(dir(vol), name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %v", file, fi.Mode().Perm(), err, mode)
		}
	}
	if err := bed.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitPodGone(ctx, p); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, err := os.Stat(dir("all"))
		if os.IsNotExist(err) && mountType(t, dir("all")) == "" && mountType(t, dir("item")) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("secret volumes left after the pod was deleted: %v, mounts %q %q", err, mountType(t, dir("all")), mountType(t, dir("item")))
		}
	}
}

// TestContainerCapabilities: added and dropped capabilities reach the process (its
// effective set, read from /proc), and a privileged container runs (its sandbox is made
// privileged too, or the runtime refuses it).
func TestContainerCapabilities(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "capabilities")
	watchNode(ctx, t, k.NodeName, isReady)
	done := func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed }
	capEff := func(p *v1.Pod) uint64 {
		p = watchPod(ctx, t, createPod(ctx, t, p), "finished", done)
		if p.Status.Phase != v1.PodSucceeded {
			t.Fatalf("%s: %s", p.Name, describe(p))
		}
		logs, err := podLogs(ctx, p, &v1.PodLogOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(logs, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "CapEff:" {
				v, err := strconv.ParseUint(f[1], 16, 64)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
		t.Fatalf("%s: no CapEff in %q", p.Name, logs)
		return 0
	}
	const chown, netBind, netAdmin = 1 << 0, 1 << 10, 1 << 12
	pod := func(sc *v1.SecurityContext) *v1.Pod {
		p := newPod(k.NodeName, "sh", "-c", "cat /proc/self/status")
		p.Spec.RestartPolicy = v1.RestartPolicyNever
		p.Spec.Containers[0].SecurityContext = sc
		return p
	}
	if got := capEff(pod(&v1.SecurityContext{Capabilities: &v1.Capabilities{Drop: []v1.Capability{"ALL"}, Add: []v1.Capability{"NET_BIND_SERVICE"}}})); got != netBind {
		t.Errorf("drop ALL, add NET_BIND_SERVICE: CapEff %#x, want %#x", got, netBind)
	}
	got := capEff(pod(&v1.SecurityContext{Capabilities: &v1.Capabilities{Drop: []v1.Capability{"CHOWN"}, Add: []v1.Capability{"NET_ADMIN"}}}))
	if got&chown != 0 || got&netAdmin == 0 {
		t.Errorf("drop CHOWN, add NET_ADMIN: CapEff %#x", got)
	}
	if got := capEff(pod(&v1.SecurityContext{Privileged: ptr(true)})); got&netAdmin == 0 || got&chown == 0 {
		t.Errorf("privileged: CapEff %#x, want every capability", got)
	}
}

// TestAdmissionAppArmorAndOS: a pod asking for an AppArmor profile on a host that does not
// enforce AppArmor is refused with upstream's reason (it would otherwise run with less
// isolation than it asked for); pods for another OS, by field or label, are refused too.
func TestAdmissionAppArmorAndOS(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "admission-os")
	watchNode(ctx, t, k.NodeName, isReady)
	failed := func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed }
	apparmor := newPod(k.NodeName, "sleep", "3600")
	apparmor.Spec.SecurityContext = &v1.PodSecurityContext{AppArmorProfile: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}}
	windows := newPod(k.NodeName, "sleep", "3600")
	windows.Spec.OS = &v1.PodOS{Name: v1.Windows}
	labelled := newPod(k.NodeName, "sleep", "3600")
	labelled.Labels = map[string]string{v1.LabelOSStable: "windows"}
	want := map[*v1.Pod][2]string{
		apparmor: {"AppArmor", "Cannot enforce AppArmor: AppArmor is not enabled on the host"},
		windows:  {"PodOSNotSupported", "Failed to admit pod as the OS field doesn't match node OS"},
		labelled: {"PodOSSelectorNodeLabelDoesNotMatch", "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label"},
	}
	if podworker.HostAppArmorEnabled() {
		delete(want, apparmor) // enforced here: the pod runs
	}
	for p, w := range want {
		got := watchPod(ctx, t, createPod(ctx, t, p), "rejected", failed)
		if got.Status.Reason != w[0] || got.Status.Message != "Pod was rejected: "+w[1] {
			t.Errorf("%s: reason %q message %q, want %q %q", p.Name, got.Status.Reason, got.Status.Message, w[0], w[1])
		}
		waitEvent(ctx, t, got, w[0], w[1])
	}
}
