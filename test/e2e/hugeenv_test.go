package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestReliabilityHugeEnv: a 10 MiB environment cannot be one pod object (the API server
// refuses objects that large), but it reaches the node through envFrom of a dozen
// configMaps near their 1 MiB limit. The kernel cannot exec a process with it; the pod
// gets the runtime's message as upstream reports it, the healthy pod beside it is not
// touched, and the node stays Ready.
func TestReliabilityHugeEnv(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	k := startKubelet(t, "rel-hugeenv")
	watchNode(ctx, t, k.NodeName, isReady)
	running := func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning }
	healthy := watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sleep", "3600")), "Running", running)
	_, before := runtimeObjects(ctx, t, string(healthy.UID))

	// 12 configMaps x 9 keys x 100 KiB = 10.5 MiB of environment; each value stays under the
	// kernel's limit for one string (128 KiB), the whole far over the one for all (~2 MiB).
	const maps, keys, size = 12, 9, 100 << 10
	value := strings.Repeat("x", size)
	huge := newPod(k.NodeName, "sleep", "3600")
	for i := range maps {
		cm := &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("huge-env-%d", i), Namespace: "default"}, Data: map[string]string{}}
		for j := range keys {
			cm.Data[fmt.Sprintf("HUGE_%d_%d", i, j)] = value
		}
		_ = bed.Client.CoreV1().ConfigMaps("default").Delete(ctx, cm.Name, metav1.DeleteOptions{})
		if _, err := bed.Client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatalf("configMap %s: %v", cm.Name, err)
		}
		t.Cleanup(func() {
			_ = bed.Client.CoreV1().ConfigMaps("default").Delete(context.Background(), cm.Name, metav1.DeleteOptions{})
		})
		huge.Spec.Containers[0].EnvFrom = append(huge.Spec.Containers[0].EnvFrom,
			v1.EnvFromSource{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: cm.Name}}})
	}
	// runc's init fails the exec after the container started, and says why on the
	// container's stderr: the log has it, and FallbackToLogsOnError puts it in the status.
	huge.Spec.Containers[0].TerminationMessagePolicy = v1.TerminationMessageFallbackToLogsOnError
	p := watchPod(ctx, t, createPod(ctx, t, huge), "CrashLoopBackOff after the failed exec", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
	})
	t.Logf("huge env: %s", describe(p))
	last := containerStatus(p, "main").LastTerminationState.Terminated
	if last == nil || last.Reason != "Error" || last.ExitCode == 0 || !strings.Contains(last.Message, "argument list too long") {
		t.Errorf("last termination %+v: want Error, non-zero exit, the kernel's E2BIG in the message", last)
	}
	if logs, err := podLogs(ctx, p, &v1.PodLogOptions{Container: "main", Previous: true}); err != nil || !strings.Contains(logs, "argument list too long") {
		t.Errorf("kubectl logs --previous: %q, %v", logs, err)
	}
	if p.Status.Phase != v1.PodRunning {
		t.Errorf("phase %s, want Running (restartPolicy Always)", p.Status.Phase)
	}

	if k.Exited() {
		t.Fatalf("minikubelet exited:\n%s", k.Tail(40))
	}
	if _, after := runtimeObjects(ctx, t, string(healthy.UID)); len(after) != 1 || after[0] != before[0] {
		t.Errorf("healthy pod's containers %v -> %v", before, after)
	}
	watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sleep", "3600")), "a new pod Running", running)
	watchNode(ctx, t, k.NodeName, isReady)
}
