package e2e

import (
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// TestPodLifecycleBadCommand: a command missing from the image is a RunContainerError with
// the runtime's message, then a StartError termination and crash back-off; other pods on
// the node are unaffected.
func TestPodLifecycleBadCommand(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "pod-badcmd")
	watchNode(ctx, t, k.NodeName, isReady)
	bad := createPod(ctx, t, newPod(k.NodeName, "/no/such/binary"))
	good := createPod(ctx, t, newPod(k.NodeName, "sleep", "3600"))
	if bed.Runtime() == testbed.RuntimeCRIO {
		// CRI-O runs runc create in CreateContainer, where runc looks the command up: the
		// container is never created, so it stays CreateContainerError (as upstream's
		// kubelet shows it on CRI-O), with no StartError and no crash back-off.
		p := watchPod(ctx, t, bad, "CreateContainerError", waitingIn("main", "CreateContainerError"))
		if msg := containerStatus(p, "main").State.Waiting.Message; !strings.HasPrefix(msg, "container create failed: ") || !strings.Contains(msg, "/no/such/binary: no such file or directory") {
			t.Errorf("CreateContainerError message %q lacks the runtime's reason", msg)
		}
		if msg := eventReasons(ctx, t, p)["Failed"]; !strings.HasPrefix(msg, "Error: ") || !strings.Contains(msg, "/no/such/binary") {
			t.Errorf("Failed event %q", msg)
		}
		watchPod(ctx, t, good, "the other pod Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && podReady(p) })
		return
	}
	sawRunErr, sawStartError := "", false
	p := watchPod(ctx, t, bad, "CrashLoopBackOff after a StartError", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		if cs == nil {
			return false
		}
		if w := cs.State.Waiting; w != nil && w.Reason == "RunContainerError" {
			sawRunErr = w.Message
		}
		for _, term := range []*v1.ContainerStateTerminated{cs.State.Terminated, cs.LastTerminationState.Terminated} {
			if term != nil && term.Reason == "StartError" && term.ExitCode == 128 {
				sawStartError = true
			}
		}
		return sawStartError && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
	})
	t.Logf("RunContainerError message: %q; final: %s", sawRunErr, describe(p))
	if sawRunErr != "" && (!strings.Contains(sawRunErr, "no such file or directory") || !strings.HasPrefix(sawRunErr, "failed to create containerd task")) {
		t.Errorf("RunContainerError message %q lacks the runtime's reason", sawRunErr)
	}
	if msg := eventReasons(ctx, t, p)["Failed"]; !strings.HasPrefix(msg, "Error: ") || !strings.Contains(msg, "/no/such/binary") {
		t.Errorf("Failed event %q", msg)
	}
	watchPod(ctx, t, good, "the other pod Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && podReady(p) })
}

func TestPodLifecycleTerminationMessages(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	k := startKubelet(t, "pod-termmsg")
	watchNode(ctx, t, k.NodeName, isReady)
	failed := func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed }

	fromFile := testAppPod(k.NodeName, "exit", "--code=1", "--message=bye from the file")
	fromFile.Spec.RestartPolicy = v1.RestartPolicyNever
	p := watchPod(ctx, t, createPod(ctx, t, fromFile), "Failed", failed)
	if term := containerStatus(p, "main").State.Terminated; term.Message != "bye from the file" || term.ExitCode != 1 {
		t.Errorf("terminated %+v, want the file's message", term)
	}

	fromLogs := newPod(k.NodeName, "sh", "-c", "echo first; echo last words; exit 2")
	fromLogs.Spec.RestartPolicy = v1.RestartPolicyNever
	fromLogs.Spec.Containers[0].TerminationMessagePolicy = v1.TerminationMessageFallbackToLogsOnError
	p = watchPod(ctx, t, createPod(ctx, t, fromLogs), "Failed", failed)
	if term := containerStatus(p, "main").State.Terminated; term.Message != "first\nlast words\n" {
		t.Errorf("terminated message %q, want the log tail", term.Message)
	}
}
