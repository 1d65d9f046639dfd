package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// errExecFailed is what the runtime answers when it cannot run a probe's command.
var errExecFailed = errors.New(`failed to exec in container: failed to start exec "e1": OCI runtime exec failed: exec failed: unable to start container process: exec: "/check": stat /check: no such file or directory: unknown`)

// TestNoGoroutineLeakWithBadTargets runs many probe workers of every kind against
// targets that fail in every way (refused, hanging, wrong protocol, exec errors and
// timeouts) on the real clock, checks the Unhealthy events read like upstream's, then
// stops the workers and checks that every goroutine they started is gone.
func TestNoGoroutineLeakWithBadTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a few seconds on the real clock")
	}
	baseline := runtime.NumGoroutine()

	// A closed TCP port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	// An HTTP server whose handler hangs until the test ends.
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	hangPort := hang.Listener.Addr().(*net.TCPAddr).Port

	// A gRPC server without the health service.
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bare := grpc.NewServer()
	go bare.Serve(gln)
	grpcPort := gln.Addr().(*net.TCPAddr).Port

	// Exec: "fail" errors in the runtime, "hang" runs until its timeout.
	exec := func(ctx context.Context, id string, cmd []string, _ time.Duration) ([]byte, int32, error) {
		if cmd[0] == "hang" {
			<-ctx.Done()
			return nil, -1, ctx.Err()
		}
		return nil, -1, errExecFailed
	}

	rec := newRecorder()
	rec.changed = make(chan struct{}, 10000)
	m := NewManager(exec, rec.event, rec.onChange)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	startManager := func() {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			m.mu.Lock()
			ok := m.ctx != nil
			m.mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("manager did not start")
			}
		}
	}
	startManager()

	probe := func(h v1.ProbeHandler) *v1.Probe {
		// Fail often, never cross the threshold: the workers keep running until stopped.
		return &v1.Probe{ProbeHandler: h, TimeoutSeconds: 1, PeriodSeconds: 1, FailureThreshold: 1000}
	}
	tcp := v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt(closedPort)}}
	httpGet := v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt(hangPort)}}
	grpcNoHealth := v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: int32(grpcPort)}}
	grpcClosed := v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: int32(closedPort)}}
	execFail := v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"fail"}}}
	execHang := v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"hang", "100"}}}
	containers := []v1.Container{
		{Name: "tcp", LivenessProbe: probe(tcp), ReadinessProbe: probe(tcp)},
		{Name: "http", LivenessProbe: probe(httpGet), ReadinessProbe: probe(httpGet)},
		{Name: "grpc", LivenessProbe: probe(grpcNoHealth), ReadinessProbe: probe(grpcNoHealth)},
		{Name: "exec", LivenessProbe: probe(execFail), ReadinessProbe: probe(execHang)},
		{Name: "startup-grpc", StartupProbe: probe(grpcClosed), LivenessProbe: probe(tcp), ReadinessProbe: probe(tcp)},
		{Name: "startup-http", StartupProbe: probe(httpGet)},
		{Name: "startup-exec", StartupProbe: probe(execHang)},
	}
	const pods = 6
	workers := 0
	for i := range pods {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: "ns", UID: types.UID(fmt.Sprintf("uid-%d", i))},
			Spec: v1.PodSpec{Containers: containers}}
		running := map[string]Running{}
		for _, c := range containers {
			running[c.Name] = Running{ID: fmt.Sprintf("%s-%d", c.Name, i), StartedAt: time.Now()}
			for _, k := range []Kind{Liveness, Readiness, Startup} {
				if probeOf(&c, k) != nil {
					workers++
				}
			}
		}
		m.Sync(pod, running, "127.0.0.1")
	}
	m.mu.Lock()
	started := len(m.workers)
	m.mu.Unlock()
	if started != workers || workers < 70 {
		t.Fatalf("%d workers started, want %d", started, workers)
	}

	// Every kind of bad target has been probed a few times (periods of 1s, timeouts of 1s).
	want := []string{
		fmt.Sprintf("Warning Unhealthy Liveness probe failed: dial tcp 127.0.0.1:%d: connect: connection refused", closedPort),
		fmt.Sprintf("Warning Unhealthy Readiness probe failed: dial tcp 127.0.0.1:%d: connect: connection refused", closedPort),
		fmt.Sprintf(`Warning Unhealthy Liveness probe failed: Get "http://127.0.0.1:%d/healthz": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`, hangPort),
		fmt.Sprintf(`Warning Unhealthy Readiness probe failed: Get "http://127.0.0.1:%d/healthz": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`, hangPort),
		fmt.Sprintf(`Warning Unhealthy Startup probe failed: Get "http://127.0.0.1:%d/healthz": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`, hangPort),
		"Warning Unhealthy Liveness probe failed: error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health",
		"Warning Unhealthy Readiness probe failed: error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health",
		fmt.Sprintf(`Warning Unhealthy Startup probe failed: timeout: failed to connect service "127.0.0.1:%d" within 1s: context deadline exceeded`, closedPort),
		"Warning Unhealthy Liveness probe errored and resulted in unknown state: " + errExecFailed.Error(),
		`Warning Unhealthy Readiness probe failed: command "hang 100" timed out`,
		`Warning Unhealthy Startup probe failed: command "hang 100" timed out`,
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		events := rec.eventList()
		var missing []string
		for _, w := range want {
			if countOf(events, w) < pods {
				missing = append(missing, w)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events never seen for every pod:\n%s\nsome events:\n%s", strings.Join(missing, "\n"), strings.Join(firstDistinct(events, 30), "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	rec.mu.Lock()
	for _, e := range rec.containers {
		// Startup never passed: liveness and readiness of that container never ran.
		if strings.HasPrefix(e, "startup-grpc: ") && !strings.Contains(e, " Startup probe ") {
			t.Errorf("probed before the startup probe passed: %q", e)
		}
		if !strings.Contains(e, ": Warning Unhealthy ") {
			t.Errorf("unexpected event %q", e)
		}
	}
	rec.mu.Unlock()
	if n := rec.changeCount(); n != 0 {
		t.Errorf("%d result changes, want none (no threshold was crossed)", n)
	}

	// Stop half the pods by removing them, the rest by stopping the manager.
	for i := range pods / 2 {
		m.RemovePod(types.UID(fmt.Sprintf("uid-%d", i)))
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("manager did not stop")
	}
	close(release)
	hang.Close()
	bare.Stop()

	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n := runtime.NumGoroutine()
		if n <= baseline {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, %d before the test:\n%s", n, baseline, buf)
		}
	}
}

func firstDistinct(list []string, n int) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] && len(out) < n {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
