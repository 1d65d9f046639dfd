package e2e

import (
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// Container garbage collection with upstream's default policy (MaxPerPodContainer 1): a
// crash-looping container keeps its current instance and the newest dead one, which
// `kubectl logs --previous` reads; older instances are removed from the runtime.
func TestResourcesContainerGC(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	k := startKubelet(t, "container-gc")
	watchNode(ctx, t, k.NodeName, isReady)
	p := newPod(k.NodeName, "sh", "-c", `echo "attempt $(cat /proc/sys/kernel/random/uuid)"; exit 1`)
	p = createPod(ctx, t, p)
	p = watchPod(ctx, t, p, "restartCount 2", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.RestartCount >= 2
	})
	// The third instance has run, so without collection the runtime would hold three.
	var containers []string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if _, containers = runtimeObjects(ctx, t, string(p.UID)); len(containers) <= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d instances of the crash-looping container in the runtime after 2 restarts, want at most 2 (current and newest dead): %v", len(containers), containers)
		}
	}
	if len(containers) != 2 {
		t.Errorf("instances in the runtime: %v, want the current and the newest dead one", containers)
	}
	logs, err := podLogs(ctx, p, &v1.PodLogOptions{Container: "main", Previous: true})
	if err != nil || !strings.HasPrefix(logs, "attempt ") {
		t.Errorf("kubectl logs --previous after collection: %q, %v", logs, err)
	}
}
