package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// hookRecorder is an HTTP server on the host that pods reach through their bridge's
// gateway address; it records the paths of the requests it gets, in order.
type hookRecorder struct {
	host string // gateway IP as pods see it
	port int
	mu   sync.Mutex
	hits []string
	got  chan string
}

func newHookRecorder(t *testing.T) *hookRecorder {
	_, subnet, err := net.ParseCIDR(bed.Opts().PodSubnet)
	if err != nil {
		t.Fatal(err)
	}
	gw := subnet.IP.To4()
	gw[3]++
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &hookRecorder{host: gw.String(), port: ln.Addr().(*net.TCPAddr).Port, got: make(chan string, 16)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits = append(r.hits, req.URL.Path)
		r.mu.Unlock()
		r.got <- req.URL.Path
		if strings.HasSuffix(req.URL.Path, "/fail") {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *hookRecorder) handler(path string) *v1.LifecycleHandler {
	return &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Host: r.host, Port: intstr.FromInt(r.port), Path: path}}
}

func (r *hookRecorder) wait(t *testing.T, path string, d time.Duration) time.Time {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case p := <-r.got:
			if p == path {
				return time.Now()
			}
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("hook %s not called within %v; calls: %v", path, d, r.hits)
		}
	}
}

func (r *hookRecorder) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.hits...)
}

func eventReasons(ctx context.Context, t *testing.T, p *v1.Pod) map[string]string {
	t.Helper()
	out := map[string]string{}
	for reason, msgs := range eventMessages(ctx, t, p) {
		out[reason] = msgs[len(msgs)-1]
	}
	return out
}

// eventMessages is every message of p's events by reason, in the API's order. An event
// repeated with new messages (a sandbox ID in each) is listed once per message until
// client-go's aggregator combines the later ones ("(combined from similar events): ").
func eventMessages(ctx context.Context, t *testing.T, p *v1.Pod) map[string][]string {
	t.Helper()
	evs, err := bed.Client.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(p.UID)).String()})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, e := range evs.Items {
		out[e.Reason] = append(out[e.Reason], e.Message)
	}
	return out
}

func TestPodLifecyclePostStartAndPreStop(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "pod-hooks")
	watchNode(ctx, t, k.NodeName, isReady)
	rec := newHookRecorder(t)

	// postStart exec writes a marker the app then serves; preStop calls the recorder.
	pod := testAppPod(k.NodeName, "serve", "--http=:8080")
	pod.Spec.TerminationGracePeriodSeconds = ptr(int64(10))
	pod.Spec.Containers[0].Lifecycle = &v1.Lifecycle{
		PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"sh", "-c", "echo poststart-ran > /tmp/marker"}}},
		PreStop:   rec.handler("/prestop"),
	}
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(fmt.Sprintf("http://%s:8080/file?path=/tmp/marker", p.Status.PodIP))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body = string(b); resp.StatusCode == 200 {
				break
			}
		}
	}
	if body != "poststart-ran\n" {
		t.Errorf("postStart marker = %q", body)
	}
	if err := bed.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "/prestop", 15*time.Second)
	if err := waitPodGone(ctx, p); err != nil {
		t.Fatal(err)
	}

	// A failing postStart kills the container: FailedPostStartHook, then restarts.
	bad := newPod(k.NodeName, "sleep", "3600")
	bad.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PostStart: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"sh", "-c", "exit 7"}}}}
	b := watchPod(ctx, t, createPod(ctx, t, bad), "restarted after postStart failure", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.RestartCount >= 1
	})
	ev := eventReasons(ctx, t, b)
	if ev["FailedPostStartHook"] != "PostStartHook failed" {
		t.Errorf("FailedPostStartHook event = %q; events %v", ev["FailedPostStartHook"], ev)
	}

	// A failing preStop is reported and the stop goes on.
	fails := newPod(k.NodeName, "sleep", "3600")
	fails.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: rec.handler("/prestop/fail")}
	f := watchPod(ctx, t, createPod(ctx, t, fails), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	if err := bed.Client.CoreV1().Pods(f.Namespace).Delete(ctx, f.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "/prestop/fail", 15*time.Second)
	if err := waitPodGone(ctx, f); err != nil {
		t.Fatal(err)
	}
	if ev := eventReasons(ctx, t, f); ev["FailedPreStopHook"] != "PreStopHook failed" {
		t.Errorf("FailedPreStopHook event = %q; events %v", ev["FailedPreStopHook"], ev)
	}
}

func TestPodLifecycleSidecarOrder(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "pod-sidecar")
	watchNode(ctx, t, k.NodeName, isReady)
	rec := newHookRecorder(t)
	always := v1.ContainerRestartPolicyAlways
	pod := testAppPod(k.NodeName, "serve", "--http=:8080")
	pod.Spec.TerminationGracePeriodSeconds = ptr(int64(10))
	pod.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: rec.handler("/main")}
	pod.Spec.InitContainers = []v1.Container{
		{Name: "sidecar1", Image: pod.Spec.Containers[0].Image, ImagePullPolicy: v1.PullIfNotPresent, RestartPolicy: &always,
			Args: []string{"serve", "--http=:8081"}, Lifecycle: &v1.Lifecycle{PreStop: rec.handler("/sidecar1")}},
		{Name: "init", Image: pod.Spec.Containers[0].Image, ImagePullPolicy: v1.PullIfNotPresent, Args: []string{"sleep", "1s"}},
		{Name: "sidecar2", Image: pod.Spec.Containers[0].Image, ImagePullPolicy: v1.PullIfNotPresent, RestartPolicy: &always,
			Args: []string{"serve", "--http=:8082"}, Lifecycle: &v1.Lifecycle{PreStop: rec.handler("/sidecar2")}},
	}
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running and Ready", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && podReady(p) })
	s1, in, s2, m := containerStatus(p, "sidecar1"), containerStatus(p, "init"), containerStatus(p, "sidecar2"), containerStatus(p, "main")
	if s1.State.Running == nil || s2.State.Running == nil || in.State.Terminated == nil || m.State.Running == nil {
		t.Fatalf("want sidecars and main running, init completed: %s", describe(p))
	}
	// Start order: sidecar1 before init, init finished before sidecar2, sidecar2 before main.
	if in.State.Terminated.StartedAt.Before(&s1.State.Running.StartedAt) ||
		s2.State.Running.StartedAt.Before(&in.State.Terminated.FinishedAt) ||
		m.State.Running.StartedAt.Before(&s2.State.Running.StartedAt) {
		t.Errorf("start order wrong: %s", describe(p))
	}
	if err := bed.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitPodGone(ctx, p); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.calls(), ","); got != "/main,/sidecar2,/sidecar1" {
		t.Errorf("stop order (preStop calls) = %s, want main first, then sidecars in reverse order", got)
	}
}
