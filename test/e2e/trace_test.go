package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// TestServerTransitionTrace: the kubelet API serves every status transition of a pod at
// /debug/pods/<ns>/<name>/transitions, in order, and the start histograms count it.
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
		}
	}
	if err := json.Unmarshal([]byte(body), &trace); err != nil {
		t.Fatal(err)
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
