package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBootstrapKubeadmStyleNode: minikubelet started the way kubeadm starts the kubelet —
// /var/lib/kubelet/config.yaml as kubeadm v1.37 writes it, plus the arguments of
// kubeadm-flags.env (split as systemd's EnvironmentFile does) — becomes a Ready node that
// runs API pods and the static pods of staticPodPath. The only edits to kubeadm's file are
// the machine's paths and ports. Its cgroupDriver: systemd is kept: the node uses the
// bed's containerd with systemd cgroups and runs beside a systemd of the bed's own (in
// its namespaces, as in a kind node); the QoS slices carry upstream's limits, its pods
// run in upstream's slices, and a deleted pod's slice is stopped.
func TestBootstrapKubeadmStyleNode(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	sd, err := bed.StartSystemdRuntime()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	data, err := os.ReadFile("../../config/testdata/kubeadm-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	manifests := filepath.Join(dir, "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(manifests, "etcd-like.yaml"), []byte(staticManifest("etcd-like", "sleep 3600")), 0o644); err != nil {
		t.Fatal(err)
	}
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freeHostPort(t)
	cfg := string(data)
	for old, new := range map[string]string{
		"clientCAFile: /etc/kubernetes/pki/ca.crt":     "clientCAFile: " + bed.PKI.CAFile(),
		"resolvConf: /run/systemd/resolve/resolv.conf": "resolvConf: " + resolv,
		"staticPodPath: /etc/kubernetes/manifests":     "staticPodPath: " + manifests,
		"healthzPort: 10248":                           "healthzPort: 0\nport: " + strconv.Itoa(int(port)) + "\npodLogsDir: " + filepath.Join(dir, "pod-logs"),
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("kubeadm config lacks %q", old)
		}
		cfg = strings.Replace(cfg, old, new, 1)
	}
	cfgFile := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	env := `KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=` + sd.Endpoint + ` --pod-infra-container-image=registry.k8s.io/pause:3.10"` + "\n"
	value := strings.Trim(strings.TrimPrefix(strings.TrimSpace(env), "KUBELET_KUBEADM_ARGS="), `"`)
	args := append([]string{"--config=" + cfgFile}, strings.Fields(value)...)

	k, err := bed.StartMinikubeletInSystemd("kubeadm-style", args...)
	if err != nil {
		t.Fatal(err)
	}
	stopWhenDone(t, k)
	node := watchNode(ctx, t, k.NodeName, isReady)
	// The node allocatable slice holds the node's CPUs as shares (nothing reserved), as
	// upstream's; the QoS slices are under it.
	kubepods := filepath.Base(sd.CgroupDir) + "/kubepods.slice"
	checkCgroupFiles(t, []cgroupFileCheck{
		{"cpu", kubepods, "cpu.shares", strconv.FormatInt(node.Status.Capacity.Cpu().MilliValue()*1024/1000, 10)},
		{"cpu", kubepods + "/kubepods-besteffort.slice", "cpu.shares", "2"},
	})
	running := func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning }
	p := watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sh", "-c", "cat /proc/self/cgroup; sleep 3600")), "API pod Running", running)
	// The container's cgroup: a systemd scope in the pod's slice, named as upstream's.
	slice := "kubepods-besteffort-pod" + strings.ReplaceAll(string(p.UID), "-", "_") + ".slice"
	path := "/kubepods.slice/kubepods-besteffort.slice/" + slice + "/cri-containerd-"
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		logs, err := podLogs(ctx, p, &v1.PodLogOptions{Container: "main"})
		if err == nil && strings.Contains(logs, "memory:"+path) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's cgroups are not in the systemd scope %s...: %q %v", path, logs, err)
		}
	}
	sliceDir := filepath.Join(sd.CgroupDir, "kubepods.slice", "kubepods-besteffort.slice", slice)
	if _, err := os.Stat(sliceDir); err != nil {
		t.Errorf("the pod's slice has no memory cgroup: %v", err)
	}
	deletePodAndWaitPathGone(ctx, t, p, sliceDir, 30*time.Second, "minikubelet did not stop the pod's slice")
	watchPod(ctx, t, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "etcd-like-" + k.NodeName}}, "static pod's mirror Running", running)
	if log := k.Tail(400); !strings.Contains(log, "--pod-infra-container-image") {
		t.Errorf("no warning naming the ignored kubeadm flag in the log")
	}
}
