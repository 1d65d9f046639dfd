package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/test/testbed"
)

// usernsRefusal is upstream's sandbox error for a `hostUsers: false` pod on a runtime
// without user namespaces (userns_manager.go), in its FailedCreatePodSandBox event.
const usernsRefusal = "Failed to create pod sandbox: can't set `spec.hostUsers: false`, runtime does not support user namespaces"

// TestRuntimeUserNamespaces: a `hostUsers: false` pod never runs with the host's users.
// What is checked follows what the node reports in status.runtimeHandlers: where the
// default handler supports user namespaces (containerd 2.x), the pod runs with root
// mapped to a host ID other than 0 (its block, as recorded in the pod's userns file) and
// its emptyDir and configMap volumes, ID-mapped, show root's files and take writes; where
// it does not (containerd 1.6 lists no handlers), the pod stays Pending with upstream's
// FailedCreatePodSandBox event and no sandbox is made.
func TestRuntimeUserNamespaces(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	k := startKubelet(t, "userns")
	node := watchNode(ctx, t, k.NodeName, isReady)
	supported := false
	for _, h := range node.Status.RuntimeHandlers {
		if h.Features == nil || h.Features.UserNamespaces == nil || h.Features.RecursiveReadOnlyMounts == nil {
			t.Errorf("runtime handler %q without both features stated: %+v", h.Name, h.Features)
			continue
		}
		if h.Name == "" {
			supported = *h.Features.UserNamespaces
		}
	}
	t.Logf("node %s: runtime %s, runtimeHandlers %s; user namespaces supported: %v", k.NodeName,
		node.Status.NodeInfo.ContainerRuntimeVersion, handlersString(node.Status.RuntimeHandlers), supported)

	cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("userns-%d", time.Now().UnixNano()%100000), Namespace: "default"},
		Data: map[string]string{"greeting": "hello"}}
	if _, err := bed.Client.CoreV1().ConfigMaps(cm.Namespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.CoreV1().ConfigMaps(cm.Namespace).Delete(context.Background(), cm.Name, metav1.DeleteOptions{})
	})
	pod := newPod(k.NodeName, "sh", "-c", `echo "uid_map $(cat /proc/self/uid_map)"; echo "gid_map $(cat /proc/self/gid_map)"; `+
		`echo "cfg $(cat /cfg/greeting) owner $(stat -L -c %u:%g /cfg/greeting)"; `+
		`echo written > /scratch/f && echo "scratch $(cat /scratch/f) owner $(stat -c %u:%g /scratch/f)"; sleep 3600`)
	pod.Spec.HostUsers = new(false)
	pod.Spec.Volumes = []v1.Volume{
		{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
		{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: cm.Name}}}},
	}
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}, {Name: "cfg", MountPath: "/cfg"}}
	p := createPod(ctx, t, pod)
	if supported {
		usernsRuns(ctx, t, k, p)
	} else {
		usernsRefused(ctx, t, p)
	}
}

func handlersString(hs []v1.NodeRuntimeHandler) string {
	b, _ := json.Marshal(hs)
	return string(b)
}

// usernsRuns checks a pod in its own user namespace: root inside is a host ID other than
// 0, the block recorded in <root-dir>/pods/<uid>/userns, and its volumes work.
func usernsRuns(ctx context.Context, t *testing.T, k *testbed.Kubelet, p *v1.Pod) {
	t.Helper()
	p = watchPod(ctx, t, p, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	var out string
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out, "scratch "); time.Sleep(300 * time.Millisecond) {
		out, _ = podLogs(ctx, p, &v1.PodLogOptions{Container: "main"})
		if time.Now().After(deadline) {
			t.Fatalf("container output incomplete: %q (%s)", out, describe(p))
		}
	}
	t.Logf("container output:\n%s", out)
	host := uint64(0)
	for _, m := range []string{"uid_map", "gid_map"} {
		f := fieldsAfter(out, m+" ")
		if len(f) != 3 || f[0] != "0" || f[2] != "65536" {
			t.Fatalf("%s %q, want one line mapping 0, 65536 IDs", m, f)
		}
		h, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil || h == 0 || h%65536 != 0 || (host != 0 && h != host) {
			t.Fatalf("%s maps root to host ID %q, want a non-zero multiple of 65536, the same for users and groups", m, f[1])
		}
		host = h
	}
	// ID-mapped volumes: root's files on the host are root's inside, and root inside writes.
	if got := strings.Join(fieldsAfter(out, "cfg "), " "); got != "hello owner 0:0" {
		t.Errorf("configMap file: %q, want %q", got, "hello owner 0:0")
	}
	if got := strings.Join(fieldsAfter(out, "scratch "), " "); got != "written owner 0:0" {
		t.Errorf("emptyDir write: %q, want %q", got, "written owner 0:0")
	}
	file := filepath.Join(k.RootDir, "pods", string(p.UID), "userns")
	data, err := os.ReadFile(file)
	want := fmt.Sprintf(`{"uidMappings":[{"hostId":%d,"containerId":0,"length":65536}],"gidMappings":[{"hostId":%d,"containerId":0,"length":65536}]}`, host, host)
	if err != nil || string(data) != want {
		t.Errorf("%s: %q, %v; want upstream's record of the block: %s", file, data, err, want)
	}
	deletePodAndWaitPathGone(ctx, t, p, file, 10*time.Second, "its user-namespace block not released")
}

// fieldsAfter is the fields of the output's first line starting with prefix, after it.
func fieldsAfter(out, prefix string) []string {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return strings.Fields(rest)
		}
	}
	return nil
}

// usernsRefused checks upstream's refusal: FailedCreatePodSandBox with its message, the
// pod Pending in ContainerCreating, and no sandbox in the runtime, also a while later.
func usernsRefused(ctx context.Context, t *testing.T, p *v1.Pod) {
	t.Helper()
	waitEvent(ctx, t, p, "FailedCreatePodSandBox", usernsRefusal)
	if msg := eventReasons(ctx, t, p)["FailedCreatePodSandBox"]; msg != usernsRefusal {
		t.Errorf("FailedCreatePodSandBox %q, want %q", msg, usernsRefusal)
	}
	time.Sleep(5 * time.Second) // a few retries
	got, err := bed.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := containerStatus(got, "main")
	if got.Status.Phase != v1.PodPending || cs == nil || cs.State.Waiting == nil || cs.State.Waiting.Reason != "ContainerCreating" {
		t.Errorf("pod %s, want Pending with main waiting in ContainerCreating", describe(got))
	}
	rt, _, closeCRI, err := testbed.CRIClients(bed.CRIEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer closeCRI()
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{cri.LabelPodUID: string(p.UID)}}})
	if err != nil || len(sbs.GetItems()) != 0 {
		t.Errorf("sandboxes of the refused pod: %v, %v; want none", sbs.GetItems(), err)
	}
	if evs := eventReasons(ctx, t, p); evs["Started"] != "" || evs["Created"] != "" {
		t.Errorf("a refused pod's container was created or started: %v", evs)
	}
}
