package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func httpProbe(path string, port int) *v1.Probe {
	return &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: path, Port: intstr.FromInt(port)}},
		PeriodSeconds: 1, FailureThreshold: 1, TimeoutSeconds: 1, SuccessThreshold: 1}
}

// poke POSTs to the test app in the pod, retrying until it listens.
func poke(t *testing.T, p *v1.Pod, path string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Post(fmt.Sprintf("http://%s:8080%s", p.Status.PodIP, path), "text/plain", nil)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST %s: %v", path, err)
		}
	}
}

// waitEvent waits for an event of p with reason whose message starts with prefix (any of
// them: a later one may be an aggregate of similar events).
func waitEvent(ctx context.Context, t *testing.T, p *v1.Pod, reason, prefix string) {
	t.Helper()
	for {
		if slices.ContainsFunc(eventMessages(ctx, t, p)[reason], func(m string) bool { return strings.HasPrefix(m, prefix) }) {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s event starting %q; events: %v", reason, prefix, eventReasons(context.Background(), t, p))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestProbeReadinessFlipsBothWays(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "probe-ready")
	watchNode(ctx, t, k.NodeName, isReady)
	pod := testAppPod(k.NodeName, "serve", "--http=:8080")
	pod.Spec.Containers[0].ReadinessProbe = httpProbe("/healthz", 8080)
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Ready", podReady)
	poke(t, p, "/healthz/fail")
	p = watchPod(ctx, t, p, "not Ready", func(p *v1.Pod) bool { return !podReady(p) })
	if c := podCondition(p, v1.ContainersReady); c.Reason != "ContainersNotReady" || c.Message != "containers with unready status: [main]" {
		t.Errorf("ContainersReady = %+v", c)
	}
	if cs := containerStatus(p, "main"); cs.State.Running == nil || cs.Ready || cs.RestartCount != 0 {
		t.Errorf("container should keep running, unready: %s", describe(p))
	}
	waitEvent(ctx, t, p, "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 500")
	poke(t, p, "/healthz/ok")
	watchPod(ctx, t, p, "Ready again", podReady)
}

func TestProbeLivenessFailureRestarts(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "probe-live")
	watchNode(ctx, t, k.NodeName, isReady)
	pod := testAppPod(k.NodeName, "serve", "--http=:8080")
	// With no delay and a threshold of 1 the first probe could kill the app before it
	// listens (upstream would too).
	pod.Spec.Containers[0].LivenessProbe = httpProbe("/healthz", 8080)
	pod.Spec.Containers[0].LivenessProbe.InitialDelaySeconds = 1
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running", func(p *v1.Pod) bool { return podReady(p) })
	poke(t, p, "/healthz/fail")
	p = watchPod(ctx, t, p, "restarted", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs.RestartCount == 1 && cs.State.Running != nil
	})
	waitEvent(ctx, t, p, "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500")
	waitEvent(ctx, t, p, "Killing", "Container main failed liveness probe, will be restarted")
	if cs := containerStatus(p, "main"); cs.LastTerminationState.Terminated == nil {
		t.Errorf("no lastState after the liveness restart: %s", describe(p))
	}
}

func TestProbeStartupGatesAndRestarts(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "probe-start")
	watchNode(ctx, t, k.NodeName, isReady)

	// The startup probe aims at a port nothing listens on: liveness (which would fail too)
	// must never fire, and after failureThreshold the container is restarted.
	pod := testAppPod(k.NodeName, "serve", "--http=:8080")
	pod.Spec.Containers[0].StartupProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt(9999)}},
		PeriodSeconds: 1, FailureThreshold: 3, TimeoutSeconds: 1, SuccessThreshold: 1}
	pod.Spec.Containers[0].LivenessProbe = httpProbe("/nope", 8081)
	p := createPod(ctx, t, pod)
	p = watchPod(ctx, t, p, "restarted by the startup probe", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		if cs != nil && cs.State.Running != nil && cs.Started != nil && *cs.Started {
			t.Errorf("container reported started although its startup probe never passed")
		}
		return cs != nil && cs.RestartCount >= 1
	})
	waitEvent(ctx, t, p, "Killing", "Container main failed startup probe, will be restarted")
	if msg, ok := eventReasons(ctx, t, p)["Unhealthy"]; !ok || !strings.HasPrefix(msg, "Startup probe failed: dial tcp") {
		t.Errorf("Unhealthy event %q, want the startup probe's", msg)
	}
	for reason, msg := range eventReasons(ctx, t, p) {
		if strings.Contains(msg, "Liveness probe") {
			t.Errorf("liveness probe ran before startup passed: %s %q", reason, msg)
		}
	}
}

func TestProbeHandlers(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	k := startKubelet(t, "probe-kinds")
	watchNode(ctx, t, k.NodeName, isReady)
	cases := []struct {
		name  string
		probe v1.ProbeHandler
		delay int32
	}{
		{"exec", v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"/testapp", "cat", "/etc/hostname"}}}, 0},
		{"http-by-name", v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}, 0},
		{"tcp", v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt(9000)}}, 0},
		{"grpc", v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: 9090}}, 0},
		{"initial-delay", v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt(8080)}}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := testAppPod(k.NodeName, "serve", "--http=:8080", "--tcp=:9000", "--grpc=:9090")
			pod.Spec.Containers[0].Ports = []v1.ContainerPort{{Name: "http", ContainerPort: 8080}}
			pod.Spec.Containers[0].ReadinessProbe = &v1.Probe{ProbeHandler: tc.probe, InitialDelaySeconds: tc.delay,
				PeriodSeconds: 1, FailureThreshold: 3, TimeoutSeconds: 1, SuccessThreshold: 1}
			p := watchPod(ctx, t, createPod(ctx, t, pod), "Ready", podReady)
			started := containerStatus(p, "main").State.Running.StartedAt.Time
			ready := podCondition(p, v1.PodReady).LastTransitionTime.Time
			// Ready comes at the first successful probe: right after initialDelay, within a
			// period (timestamps have one-second resolution).
			if d := ready.Sub(started); d < time.Duration(tc.delay)*time.Second || d > time.Duration(tc.delay+2)*time.Second {
				t.Errorf("Ready %v after the container started, want %ds + at most a period", d, tc.delay)
			}
		})
	}

	// Bad probes fail cleanly with upstream's messages: a probe that cannot even run (the
	// runtime cannot start the command, the named port does not exist) "errored", as
	// upstream's prober reports it, and leaves the container not ready.
	bad := []struct {
		name  string
		probe v1.ProbeHandler
		msg   string
	}{
		{"closed-port", v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt(9999)}}, "Readiness probe failed: dial tcp"},
		{"missing-command", v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"/no/such/command"}}}, "Readiness probe errored and resulted in unknown state: "},
		{"no-grpc-health", v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: 8080}}, "Readiness probe failed: "},
		{"unknown-named-port", v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/", Port: intstr.FromString("nope")}}, "Readiness probe errored and resulted in unknown state: couldn't find port: nope in container"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			pod := testAppPod(k.NodeName, "serve", "--http=:8080")
			pod.Spec.Containers[0].ReadinessProbe = &v1.Probe{ProbeHandler: tc.probe, PeriodSeconds: 1, FailureThreshold: 1, TimeoutSeconds: 1, SuccessThreshold: 1}
			p := watchPod(ctx, t, createPod(ctx, t, pod), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
			waitEvent(ctxFor(t, 30*time.Second), t, p, "Unhealthy", tc.msg)
			if p := watchPod(ctx, t, p, "still running", func(p *v1.Pod) bool { return true }); podReady(p) {
				t.Errorf("pod Ready with a failing probe: %s", describe(p))
			}
		})
	}
}
