package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// TestResourcesCgroupsOrphans: the node removes the pod cgroups no pod of its own needs,
// as upstream's housekeeping (cleanupOrphanedPodCgroups) and syncTerminatedPod do. A pod
// cgroup with a process in it that no pod owns (as an agent's crash leaves one) goes, the
// process killed; a pod that finished loses its cgroup while it stays in the API; a
// deleted pod's goes with it; a running pod's stays. The same checks pass on the pinned
// upstream kubelet (make test-upstream).
func TestResourcesCgroupsOrphans(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	const root = "/mkl-e2e-orphans"
	k := startCgroupNode(t, "orphans", root)
	stopWhenDone(t, k)
	watchNode(ctx, t, k.NodeName, isReady)
	besteffort := root + "/kubepods/besteffort/pod"

	running := createPod(ctx, t, newPod(k.NodeName, "sleep", "3600"))
	finished := newPod(k.NodeName, "true")
	finished.Spec.RestartPolicy = v1.RestartPolicyNever
	finished = createPod(ctx, t, finished)
	running = watchPod(ctx, t, running, "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })

	// A pod cgroup of no pod, with a process in it.
	stray := besteffort + string(uuid.NewUUID())
	procs, err := testbed.MakeCgroup(stray)
	if err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command("sleep", "600")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sleep.Wait() }()
	t.Cleanup(func() { _ = sleep.Process.Kill() })
	for _, f := range procs {
		if err := os.WriteFile(f, []byte(strconv.Itoa(sleep.Process.Pid)), 0o644); err != nil {
			t.Fatalf("moving the stray process into %s: %v", f, err)
		}
	}
	poll(ctx, t, 30*time.Second, "the stray pod cgroup removed", cgroupGone(stray))
	select {
	case err := <-waited:
		t.Logf("stray process: %v", err)
	case <-ctx.Done():
		t.Fatal("the stray pod cgroup is gone but its process still runs")
	}

	finished = watchPod(ctx, t, finished, "Succeeded", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded })
	poll(ctx, t, 30*time.Second, "the finished pod's cgroup removed", cgroupGone(besteffort+string(finished.UID)))
	if p, err := bed.Client.CoreV1().Pods(finished.Namespace).Get(ctx, finished.Name, metav1.GetOptions{}); err != nil || p.Status.Phase != v1.PodSucceeded {
		t.Errorf("finished pod after its cgroup went: %v", err)
	}
	if err := cgroupGone(besteffort + string(running.UID))(ctx); err == nil {
		t.Fatal("the running pod's cgroup was removed")
	}
	deletePodAndWaitPathGone(ctx, t, running, filepath.Join("/sys/fs/cgroup/memory", besteffort+string(running.UID)), 30*time.Second, "the deleted pod's cgroup")
}

// cgroupGone: cg is in none of the cgroup hierarchies.
func cgroupGone(cg string) func(context.Context) error {
	return func(context.Context) error {
		for _, h := range testbed.CgroupHierarchies() {
			if _, err := os.Stat(filepath.Join(h, cg)); err == nil {
				return fmt.Errorf("%s still there", filepath.Join(h, cg))
			}
		}
		return nil
	}
}

// podCgroupsUnder lists the pod cgroups (pod<uid>, directly or under a QoS cgroup) under
// the node allocatable cgroup qos in every hierarchy.
func podCgroupsUnder(qos string) []string {
	var out []string
	for _, h := range testbed.CgroupHierarchies() {
		for _, pattern := range []string{"pod*", "*/pod*"} {
			m, _ := filepath.Glob(filepath.Join(h, qos, pattern))
			out = append(out, m...)
		}
	}
	return out
}
