package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// TestServerTransitionTrace: the kubelet API serves every status transition of a pod at
// /debug/pods/<ns>/<name>/transitions, in order (the first with the whole status, later
// ones a diff each), and the start histograms count it.
func TestServerTransitionTrace(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "trace")
	watchNode(ctx, t, k.NodeName, isReady)
	pod := newPod(k.NodeName, "sh", "-c", "sleep 1; exit 3")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Failed", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	crt, key, err := bed.PKI.Issue("e2e-trace-admin", "e2e-trace-admin", []string{"system:masters"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, body := kubeletGet(ctx, t, k, "/debug/pods/default/"+p.Name+"/transitions", crt, key, "")
	if code != 200 {
		t.Fatalf("transitions: %d %s", code, body)
	}
	var trace struct {
		Transitions []struct {
			From, To string
			Since    time.Duration `json:"sinceFirstSeen"`
			Status   *v1.PodStatus
			Diff     json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(body), &trace); err != nil {
		t.Fatal(err)
	}
	if len(trace.Transitions) == 0 {
		t.Fatalf("no transitions: %s", body)
	}
	// The first entry holds the whole status, every later one a diff from the one before:
	// replayed, they end in the status the API holds.
	first := trace.Transitions[0]
	if first.Status == nil || first.Status.Phase != v1.PodPending || len(first.Diff) != 0 {
		t.Fatalf("first entry has no whole Pending status: %+v", first)
	}
	var diffs []json.RawMessage
	for i, tr := range trace.Transitions[1:] {
		if tr.Status != nil || len(tr.Diff) == 0 || string(tr.Diff) == "{}" {
			t.Fatalf("entry %d is not a diff: status %v, diff %s", i+1, tr.Status, tr.Diff)
		}
		diffs = append(diffs, tr.Diff)
	}
	final := replayDiffs(t, first.Status, diffs)
	if final.Phase != v1.PodFailed || len(final.ContainerStatuses) != 1 || final.ContainerStatuses[0].State.Terminated == nil ||
		final.ContainerStatuses[0].State.Terminated.ExitCode != 3 || final.ObservedGeneration != p.Generation {
		t.Errorf("replayed trace ends in %+v, want Failed with main exited 3 at generation %d", final, p.Generation)
	}
	var phases []string
	for i, tr := range trace.Transitions {
		if i > 0 && (tr.From != trace.Transitions[i-1].To || tr.Since < trace.Transitions[i-1].Since) {
			t.Errorf("transition %d does not follow the one before: %+v", i, tr)
		}
		phase := strings.SplitN(tr.To, " ", 2)[0]
		if len(phases) == 0 || phases[len(phases)-1] != phase {
			phases = append(phases, phase)
		}
	}
	if got := strings.Join(phases, ">"); got != "Pending>Running>Failed" {
		t.Errorf("phases %s, want Pending>Running>Failed; trace:\n%s", got, body)
	}
	if last := trace.Transitions[len(trace.Transitions)-1].To; !strings.Contains(last, "main:terminated(Error)") {
		t.Errorf("last transition %q", last)
	}
	if code, body := kubeletGet(ctx, t, k, "/debug/pods/default/no-such-pod/transitions", crt, key, ""); code != 404 {
		t.Errorf("unknown pod: %d %s", code, body)
	}
	_, metrics := kubeletGet(ctx, t, k, "/metrics", crt, key, "")
	if !strings.Contains(metrics, "minikubelet_pod_time_to_running_seconds_count 1") ||
		!strings.Contains(metrics, "kubelet_pod_start_duration_seconds_count 1") ||
		!strings.Contains(metrics, "minikubelet_container_exit_seen_seconds_count 1") {
		t.Errorf("histograms did not count the pod and its exit")
	}
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "minikubelet_container_exit_seen_seconds_sum") {
			t.Logf("measured: container exit -> worker woken: %s s", strings.Fields(line)[1])
		}
	}
}

// replayDiffs applies each strategic merge patch of a transition trace in turn to the
// first entry's whole status.
func replayDiffs(t *testing.T, first *v1.PodStatus, diffs []json.RawMessage) v1.PodStatus {
	t.Helper()
	cur, err := json.Marshal(first)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range diffs {
		if cur, err = strategicpatch.StrategicMergePatch(cur, d, v1.PodStatus{}); err != nil {
			t.Fatalf("diff %d %s does not apply: %v", i+1, d, err)
		}
	}
	var st v1.PodStatus
	if err := json.Unmarshal(cur, &st); err != nil {
		t.Fatal(err)
	}
	return st
}
