package e2e

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

func staticManifest(name, cmd string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: ` + name + `
  labels: {tier: static}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: ` + testbed.BusyboxImage + `
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "` + cmd + `"]
`
}

// TestStaticPodLifecycle: a manifest in the static pod folder runs without any API pod
// and gets a mirror pod (owned by the Node) carrying its status; a deleted mirror pod is
// recreated without restarting the pod; an edited manifest restarts it; bad manifests are
// logged with their file name and skipped; removing the manifest stops the pod and
// deletes the mirror.
func TestStaticPodLifecycle(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	dir := t.TempDir()
	file := filepath.Join(dir, "web.yaml")
	write := func(path, data string) {
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(file, staticManifest("web", "sleep 3600"))
	write(filepath.Join(dir, "broken.yaml"), "{{{ this is not yaml")
	write(filepath.Join(dir, "noname.yaml"), "apiVersion: v1\nkind: Pod\nspec:\n  containers: [{name: a, image: x}]\n")
	k := startKubelet(t, "static", "--pod-manifest-path="+dir)
	node := watchNode(ctx, t, k.NodeName, isReady)
	mirrorName := "web-" + k.NodeName
	ref := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: mirrorName}}

	running := func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return p.Status.Phase == v1.PodRunning && cs != nil && cs.State.Running != nil
	}
	m1 := watchPod(ctx, t, ref, "mirror pod Running", running)
	if m1.Annotations["kubernetes.io/config.mirror"] == "" || m1.Annotations["kubernetes.io/config.source"] != "file" {
		t.Errorf("mirror annotations %v", m1.Annotations)
	}
	if o := m1.OwnerReferences; len(o) != 1 || o[0].Kind != "Node" || o[0].UID != node.UID {
		t.Errorf("mirror owner %v, want the Node", o)
	}
	firstID := containerStatus(m1, "main").ContainerID
	for _, f := range []string{"broken.yaml", "noname.yaml"} {
		if !strings.Contains(k.Tail(200), f) {
			t.Errorf("kubelet log does not name the bad manifest %s", f)
		}
	}

	// Someone deletes the mirror pod: it comes back, the pod was not restarted.
	if err := bed.Client.CoreV1().Pods("default").Delete(ctx, mirrorName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	m2 := watchPod(ctx, t, ref, "mirror recreated", func(p *v1.Pod) bool { return p.UID != m1.UID && running(p) })
	if id := containerStatus(m2, "main").ContainerID; id != firstID {
		t.Errorf("container %s after mirror recreation, want the same %s", id, firstID)
	}

	// Editing the manifest replaces the pod.
	write(file, staticManifest("web", "echo edited; sleep 3600"))
	m3 := watchPod(ctx, t, ref, "edited pod running", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return p.Annotations["kubernetes.io/config.mirror"] != m1.Annotations["kubernetes.io/config.mirror"] &&
			running(p) && cs.ContainerID != firstID
	})
	t.Logf("edited manifest running as %s", containerStatus(m3, "main").ContainerID)

	// Removing the manifest deletes the mirror pod and stops the containers.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := waitPodGone(ctx, m3); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if sbs, cts := runtimeObjects(ctx, t, m3.Annotations["kubernetes.io/config.hash"]); len(sbs)+len(cts) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("static pod's sandbox still in the runtime after its manifest was removed")
		}
	}
}

// TestStaticPodStandalone: with only a static pod folder and no kubeconfig, minikubelet
// runs the pods without any API server and serves them, with their status, at /pods.
func TestStaticPodStandalone(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	dir := t.TempDir()
	file := filepath.Join(dir, "solo.yaml")
	if err := os.WriteFile(file, []byte(staticManifest("solo", "sleep 3600")), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := bed.StartMinikubeletStandalone("standalone", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = k.Stop(15 * time.Second)
		if t.Failed() {
			t.Logf("standalone log tail:\n%s", k.Tail(60))
		}
	})
	name := "solo-" + k.NodeName
	// The kubelet API listens once start-up is done.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		c, err := net.Dial("tcp", net.JoinHostPort(testbed.NodeIP, strconv.Itoa(k.Port)))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || k.Exited() {
			t.Fatalf("the standalone kubelet API does not listen: %v", err)
		}
	}
	var running *v1.Pod
	for deadline := time.Now().Add(60 * time.Second); running == nil; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the static pod is not Running at /pods after 60s")
		}
		code, body := kubeletGet(ctx, t, k, "/pods", "", "", "") // anonymous: no API server to ask
		if code != 200 {
			continue
		}
		var list v1.PodList
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatalf("/pods: %v", err)
		}
		for i := range list.Items {
			p := &list.Items[i]
			if cs := containerStatus(p, "main"); p.Name == name && p.Status.Phase == v1.PodRunning && cs != nil && cs.State.Running != nil {
				running = p
			}
		}
	}
	if _, err := bed.Client.CoreV1().Nodes().Get(ctx, k.NodeName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a standalone node must not register a Node: %v", err)
	}
	if sbs, _ := runtimeObjects(ctx, t, string(running.UID)); len(sbs) != 1 {
		t.Errorf("sandboxes of the static pod: %v", sbs)
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if sbs, cts := runtimeObjects(ctx, t, string(running.UID)); len(sbs)+len(cts) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the static pod is still in the runtime after its manifest was removed")
		}
	}
}
