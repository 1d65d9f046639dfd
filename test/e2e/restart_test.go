package e2e

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/test/testbed"
)

func runtimeObjects(ctx context.Context, t *testing.T, uid string) (sandboxes, containers []string) {
	t.Helper()
	rt, _, closeCRI, err := testbed.CRIClients(bed.CRIEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer closeCRI()
	sel := map[string]string{cri.LabelPodUID: uid}
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{LabelSelector: sel}})
	if err != nil {
		t.Fatal(err)
	}
	cts, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: sel}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sbs.Items {
		sandboxes = append(sandboxes, s.Id)
	}
	for _, c := range cts.Containers {
		containers = append(containers, c.Id)
	}
	return sandboxes, containers
}

// TestPodLifecycleRestartAdoptsAndReapsOrphans: after minikubelet is SIGKILLed and started
// again, running containers are adopted (same IDs, no restart), and a pod deleted from the
// API meanwhile is removed from containerd.
func TestPodLifecycleRestartAdoptsAndReapsOrphans(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "pod-restart")
	watchNode(ctx, t, k.NodeName, isReady)
	running := func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning }
	keep := watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sleep", "3600")), "Running", running)
	gone := watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sleep", "3600")), "Running", running)
	_, keepBefore := runtimeObjects(ctx, t, string(keep.UID))

	k.Kill()
	if err := bed.Client.CoreV1().Pods(gone.Namespace).Delete(ctx, gone.Name, deleteNow); err != nil {
		t.Fatal(err)
	}
	if _, err := bed.RestartKubelet(k); err != nil {
		t.Fatal(err)
	}
	// A new pod running proves the restarted agent is syncing.
	watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sleep", "3600")), "Running", running)

	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		sbs, cts := runtimeObjects(ctx, t, string(gone.UID))
		if len(sbs) == 0 && len(cts) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("orphaned pod still in containerd: sandboxes %v containers %v", sbs, cts)
		}
	}
	_, keepAfter := runtimeObjects(ctx, t, string(keep.UID))
	if len(keepAfter) != 1 || len(keepBefore) != 1 || keepAfter[0] != keepBefore[0] {
		t.Errorf("containers of the running pod before %v after %v, want the same one adopted", keepBefore, keepAfter)
	}
	p, err := bed.Client.CoreV1().Pods(keep.Namespace).Get(ctx, keep.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cs := containerStatus(p, "main"); cs.RestartCount != 0 || cs.State.Running == nil || containerID(p, "main") != keepBefore[0] {
		t.Errorf("adopted pod status: %s (%s)", describe(p), cs.ContainerID)
	}
}
