package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/test/testbed"
)

const ns = "default"

// RunResult holds the raw samples of one agent run (all durations in seconds).
type RunResult struct {
	Agent string `json:"agent"`
	Node  string `json:"node"`
	// (1) pods created one after another: create -> Running, create -> Ready.
	SeqRunning []float64 `json:"seq_create_to_running_s"`
	SeqReady   []float64 `json:"seq_create_to_ready_s"`
	// (2) a batch created at once: first create call -> all Ready; per pod create -> Ready.
	BatchPods       int       `json:"batch_pods"`
	BatchAllReady   float64   `json:"batch_all_ready_s"`
	BatchPodsPerSec float64   `json:"batch_pods_per_s"`
	BatchReady      []float64 `json:"batch_create_to_ready_s"`
	// (3) deletion of the batch with grace 0: delete call -> DELETED event per pod, and
	// first delete call -> no sandbox of the batch ready in the runtime.
	DeleteGone           []float64 `json:"delete_to_gone_s"`
	DeleteRuntimeStopped float64   `json:"delete_to_runtime_stopped_s"`
	// (4) /exit HTTP response -> the watch shows the container terminated (the test app
	// exits 50 ms after it answers).
	ExitToStatus []float64 `json:"exit_response_to_terminated_s"`
	// (5) crash loop (sh -c 'exit 1', restartPolicy Always): when restartCount 1, 2, 3
	// were seen, relative to the create call.
	CrashRestarts []float64 `json:"crash_restart_seen_s"`
	// (6) the agent process with no pods, and with FootprintPods sleeping pods.
	Idle          Footprint `json:"idle"`
	FootprintPods int       `json:"footprint_pods"`
	Loaded        Footprint `json:"loaded"`
	// Wall time of the whole run.
	Wall float64 `json:"wall_s"`
}

// agentRun runs the workloads against one node agent that is already Ready.
type agentRun struct {
	cfg    config
	bed    *testbed.Bed
	client kubernetes.Interface
	rt     *cri.Client
	k      *testbed.Kubelet
	tr     *tracker
	prefix string // pod name prefix, unique per run
	res    *RunResult
	log    func(format string, args ...any)
}

func (r *agentRun) alive() error {
	if r.k.Exited() {
		return fmt.Errorf("node agent %s exited; log tail:\n%s", r.k.Name, r.k.Tail(40))
	}
	return nil
}

func busyboxPod(name, node string, cmd ...string) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "bench"}},
		Spec: v1.PodSpec{
			NodeName:                      node,
			AutomountServiceAccountToken:  new(bool),
			TerminationGracePeriodSeconds: new(int64),
			Containers: []v1.Container{{
				Name: "main", Image: testbed.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent, Command: cmd,
			}},
		},
	}
}

func testAppPod(name, node string, args ...string) *v1.Pod {
	p := busyboxPod(name, node)
	p.Spec.Containers[0].Image = testbed.TestAppImage
	p.Spec.Containers[0].Command = nil
	p.Spec.Containers[0].Args = args
	return p
}

// create creates pod and returns the time taken just before the call.
func (r *agentRun) create(ctx context.Context, pod *v1.Pod) (time.Time, error) {
	// The default service account may not exist yet right after the control plane
	// started; the pod is then refused for a moment.
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		t0 := time.Now()
		_, err := r.client.CoreV1().Pods(pod.Namespace).Create(cctx, pod, metav1.CreateOptions{})
		cancel()
		if err == nil {
			return t0, nil
		}
		if attempt >= 50 || ctx.Err() != nil || apierrors.IsAlreadyExists(err) || apierrors.IsInvalid(err) {
			return t0, fmt.Errorf("create pod %s: %w", pod.Name, err)
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// createAll creates pods at once (one goroutine each) and returns each create time.
func (r *agentRun) createAll(ctx context.Context, pods []*v1.Pod) (map[string]time.Time, error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	times := map[string]time.Time{}
	var firstErr error
	for _, p := range pods {
		wg.Add(1)
		go func(p *v1.Pod) {
			defer wg.Done()
			t0, err := r.create(ctx, p)
			mu.Lock()
			defer mu.Unlock()
			times[p.Name] = t0
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}(p)
	}
	wg.Wait()
	return times, firstErr
}

func isReady(pt *podTrack) bool   { return !pt.ready.IsZero() }
func isDeleted(pt *podTrack) bool { return !pt.deleted.IsZero() }

// cleanPods deletes every pod of the node (grace 0), waits until the watch saw them go
// and no sandbox is ready in the runtime, then removes the stopped sandboxes, so every
// workload starts from an empty runtime for both agents.
func (r *agentRun) cleanPods(ctx context.Context) error {
	list, err := r.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", r.k.NodeName).String()})
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	var names []string
	for _, p := range list.Items {
		names = append(names, p.Name)
		err := r.client.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete pod %s: %w", p.Name, err)
		}
	}
	if err := r.tr.waitPods(ctx, time.Minute, "pods deleted", names, isDeleted); err != nil {
		return err
	}
	if _, err := waitSandboxesStopped(ctx, r.rt, nil, 2*time.Minute, r.alive); err != nil {
		return fmt.Errorf("after deleting the pods: %w", err)
	}
	return removeSandboxes(ctx, r.rt, true, time.Minute)
}

func (r *agentRun) run(ctx context.Context) error {
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"sequential pods", r.sequential},
		{"batch create and delete", r.batch},
		{"status write-back and crash loop", r.exitAndCrash},
		{"footprint", r.footprint},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("%s on %s: %w", s.name, r.k.NodeName, err)
		}
		if err := r.cleanPods(ctx); err != nil {
			return fmt.Errorf("cleaning up after %s on %s: %w", s.name, r.k.NodeName, err)
		}
		r.log("  %s: %s done (%.1fs)", r.k.NodeName, s.name, time.Since(start).Seconds())
	}
	return nil
}

// (1) pods created one after another, each waited for until Ready.
func (r *agentRun) sequential(ctx context.Context) error {
	for i := 0; i < r.cfg.SeqPods; i++ {
		name := fmt.Sprintf("%s-seq-%02d", r.prefix, i)
		t0, err := r.create(ctx, busyboxPod(name, r.k.NodeName, "sleep", "3600"))
		if err != nil {
			return err
		}
		if err := r.tr.waitPods(ctx, time.Minute, "pod Running and Ready", []string{name}, isReady); err != nil {
			return err
		}
		pt := r.tr.get(name)
		running := pt.running
		if running.IsZero() || running.After(pt.ready) {
			running = pt.ready
		}
		r.res.SeqRunning = append(r.res.SeqRunning, secs(running.Sub(t0)))
		r.res.SeqReady = append(r.res.SeqReady, secs(pt.ready.Sub(t0)))
	}
	return nil
}

// (2) a batch created at once, then (3) deleted at once with grace 0.
func (r *agentRun) batch(ctx context.Context) error {
	var pods []*v1.Pod
	var names []string
	for i := 0; i < r.cfg.BatchPods; i++ {
		name := fmt.Sprintf("%s-batch-%02d", r.prefix, i)
		pods = append(pods, busyboxPod(name, r.k.NodeName, "sleep", "3600"))
		names = append(names, name)
	}
	start := time.Now()
	created, err := r.createAll(ctx, pods)
	if err != nil {
		return err
	}
	if err := r.tr.waitPods(ctx, 3*time.Minute, "batch Ready", names, isReady); err != nil {
		return err
	}
	var last time.Time
	uids := map[string]bool{}
	for _, n := range names {
		pt := r.tr.get(n)
		if pt.ready.After(last) {
			last = pt.ready
		}
		uids[pt.uid] = true
		r.res.BatchReady = append(r.res.BatchReady, secs(pt.ready.Sub(created[n])))
	}
	r.res.BatchPods = len(names)
	r.res.BatchAllReady = secs(last.Sub(start))
	r.res.BatchPodsPerSec = float64(len(names)) / r.res.BatchAllReady

	// (3) Deletion, grace 0, all at once.
	var mu sync.Mutex
	var wg sync.WaitGroup
	deleted := map[string]time.Time{}
	var firstErr error
	delStart := time.Now()
	for _, n := range names {
		wg.Add(1)
		go func(n string) {
			defer wg.Done()
			t0 := time.Now()
			err := r.client.CoreV1().Pods(ns).Delete(ctx, n, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
			mu.Lock()
			defer mu.Unlock()
			deleted[n] = t0
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("delete %s: %w", n, err)
			}
		}(n)
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	stopped, err := waitSandboxesStopped(ctx, r.rt, uids, 2*time.Minute, r.alive)
	if err != nil {
		return fmt.Errorf("batch sandboxes stopped after deletion: %w", err)
	}
	r.res.DeleteRuntimeStopped = secs(stopped.Sub(delStart))
	if err := r.tr.waitPods(ctx, time.Minute, "batch DELETED", names, isDeleted); err != nil {
		return err
	}
	for _, n := range names {
		r.res.DeleteGone = append(r.res.DeleteGone, secs(r.tr.get(n).deleted.Sub(deleted[n])))
	}
	return nil
}

// (4) status write-back: test-app pods asked to exit over HTTP, one at a time; (5) a
// crash-looping pod runs alongside (it spends nearly all the time in back-off).
func (r *agentRun) exitAndCrash(ctx context.Context) error {
	crash := busyboxPod(r.prefix+"-crash", r.k.NodeName, "sh", "-c", "exit 1")
	crash.Spec.RestartPolicy = v1.RestartPolicyAlways
	crashT0, err := r.create(ctx, crash)
	if err != nil {
		return err
	}
	var pods []*v1.Pod
	var names []string
	for i := 0; i < r.cfg.ExitSamples; i++ {
		name := fmt.Sprintf("%s-exit-%02d", r.prefix, i)
		p := testAppPod(name, r.k.NodeName, "serve", "--http=:8080")
		p.Spec.RestartPolicy = v1.RestartPolicyNever
		pods = append(pods, p)
		names = append(names, name)
	}
	if _, err := r.createAll(ctx, pods); err != nil {
		return err
	}
	if err := r.tr.waitPods(ctx, 2*time.Minute, "test-app pods Ready", names, func(pt *podTrack) bool { return isReady(pt) && pt.ip != "" }); err != nil {
		return err
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, n := range names {
		ip := r.tr.get(n).ip
		var answered time.Time
		for deadline := time.Now().Add(15 * time.Second); ; {
			resp, err := hc.Get(fmt.Sprintf("http://%s:8080/exit?code=3", ip))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				answered = time.Now()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = fmt.Errorf("HTTP %s", resp.Status)
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("ask test app %s (%s) to exit: %v", n, ip, err)
			}
			sleepCtx(ctx, 50*time.Millisecond)
		}
		if err := r.tr.waitPods(ctx, 30*time.Second, "container terminated after /exit", []string{n}, func(pt *podTrack) bool { return !pt.terminated.IsZero() }); err != nil {
			return err
		}
		pt := r.tr.get(n)
		if pt.exitCode != 3 {
			return fmt.Errorf("pod %s: exit code %d, want 3", n, pt.exitCode)
		}
		r.res.ExitToStatus = append(r.res.ExitToStatus, secs(pt.terminated.Sub(answered)))
	}

	if err := r.tr.waitPods(ctx, 2*time.Minute, "3 restarts of the crash-looping pod", []string{crash.Name}, func(pt *podTrack) bool { return len(pt.restarts) >= 3 }); err != nil {
		return err
	}
	for _, t := range r.tr.get(crash.Name).restarts[:3] {
		r.res.CrashRestarts = append(r.res.CrashRestarts, secs(t.Sub(crashT0)))
	}
	return nil
}

// (6) the agent with no pods for the window, then with FootprintPods sleeping pods.
func (r *agentRun) footprint(ctx context.Context) error {
	var err error
	if r.res.Idle, err = measureFootprint(ctx, r.k.Pid(), r.cfg.Idle, r.alive); err != nil {
		return fmt.Errorf("idle footprint: %w", err)
	}
	var pods []*v1.Pod
	var names []string
	for i := 0; i < r.cfg.FootprintPods; i++ {
		name := fmt.Sprintf("%s-fp-%02d", r.prefix, i)
		pods = append(pods, busyboxPod(name, r.k.NodeName, "sleep", "3600"))
		names = append(names, name)
	}
	if _, err := r.createAll(ctx, pods); err != nil {
		return err
	}
	if err := r.tr.waitPods(ctx, 5*time.Minute, fmt.Sprintf("%d footprint pods Ready", len(names)), names, isReady); err != nil {
		return err
	}
	sleepCtx(ctx, 5*time.Second) // let the status of the last pods settle
	r.res.FootprintPods = len(names)
	if r.res.Loaded, err = measureFootprint(ctx, r.k.Pid(), r.cfg.Idle, r.alive); err != nil {
		return fmt.Errorf("footprint with %d pods: %w", len(names), err)
	}
	return nil
}
