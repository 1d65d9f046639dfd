package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/test/testbed"
)

const ns = "default"

// RunResult holds the raw samples of one agent run (all durations in seconds).
type RunResult struct {
	Agent string `json:"agent"`
	Node  string `json:"node"`
	Round int    `json:"round"`
	// (1) pods created one after another: create -> Running, create -> Ready.
	SeqRunning []float64 `json:"seq_create_to_running_s"`
	SeqReady   []float64 `json:"seq_create_to_ready_s"`
	// (1) one more pod: the agent's CRI calls from its create until Running was seen, per
	// operation_type.
	CRISingle map[string]float64 `json:"cri_calls_one_pod"`
	// (2), (3) the batches.
	Batches []BatchResult `json:"batches"`
	// (4) the random delay before each /exit, and /exit HTTP response -> the watch shows
	// the container terminated (the test app exits 50 ms after it answers).
	ExitDelay    []float64 `json:"exit_delay_s"`
	ExitToStatus []float64 `json:"exit_response_to_terminated_s"`
	// ExitToRuntime: /exit HTTP response -> the runtime's CRI ContainerStatus shows the
	// container exited (polled every exitPoll): the part of ExitToStatus no agent can cut.
	ExitToRuntime []float64 `json:"exit_response_to_runtime_exited_s,omitempty"`
	// (5) crash loop (sh -c 'exit 1', restartPolicy Always): when restartCount 1, 2, 3
	// were seen, relative to the create call.
	CrashRestarts []float64 `json:"crash_restart_seen_s,omitempty"`
	// (6) the agent process with no pods and its Go memory statistics then; and with
	// FootprintPods sleeping pods: first create -> all Running, the process, Go statistics.
	Idle          *Footprint         `json:"idle,omitempty"`
	ImageMiB      float64            `json:"image_mib,omitempty"` // the agent binary's read-only segments
	IdleGo        map[string]float64 `json:"idle_go,omitempty"`
	FootprintPods int                `json:"footprint_pods,omitempty"`
	AllRunning    float64            `json:"footprint_all_running_s,omitempty"`
	Loaded        *Footprint         `json:"loaded,omitempty"`
	LoadedGo      map[string]float64 `json:"loaded_go,omitempty"`
	// Wall time of the whole run.
	Wall float64 `json:"wall_s"`
}

// BatchResult is one batch created at once and deleted at once.
type BatchResult struct {
	Pods int `json:"pods"`
	// First create call -> all Ready; pods/s; per pod create -> Ready.
	AllReady   float64   `json:"all_ready_s"`
	PodsPerSec float64   `json:"pods_per_s"`
	Ready      []float64 `json:"create_to_ready_s"`
	// Delete call -> DELETED event per pod, and first delete call -> no sandbox of the
	// batch ready in the runtime.
	DeleteGone           []float64 `json:"delete_to_gone_s"`
	DeleteRuntimeStopped float64   `json:"delete_to_runtime_stopped_s"`
	// The agent's CRI calls per operation_type from before the first create until the
	// batch's sandboxes were all stopped and its pods gone from the API.
	CRICalls map[string]float64 `json:"cri_calls"`
	// CPU seconds by process group (cpuGroups) from the first create until all were
	// Ready, and from the first delete until no sandbox of the batch was ready.
	CPUCreate map[string]float64 `json:"cpu_create_s,omitempty"`
	CPUDelete map[string]float64 `json:"cpu_delete_s,omitempty"`
	// CPURemoved: first delete → the last DELETED event, the window the delete rows time.
	CPURemoved map[string]float64 `json:"cpu_removed_s,omitempty"`
}

// agentRun runs the workloads against one node agent that is already Ready.
type agentRun struct {
	cfg    config
	prof   profile
	round  int
	bed    *testbed.Bed
	client kubernetes.Interface
	api    *kubeletAPI
	rt     *cri.Client
	k      *testbed.Kubelet
	tr     *tracker
	prefix string // pod name prefix, unique per run
	res    *RunResult
	log    func(format string, args ...any)
	// heapPrefix names minikubelet's heap profiles in the output folder ("" for none);
	// idleHeap and loadedHeap are the ones saved, after the idle window and with the
	// footprint pods on the node.
	heapPrefix, idleHeap, loadedHeap string
}

// large says whether this round runs the long workloads (batches after the first, the
// full node).
func (r *agentRun) large() bool { return r.round <= r.cfg.LargeRounds }

func (r *agentRun) alive() error {
	if r.k.Exited() {
		return fmt.Errorf("node agent %s exited; log tail:\n%s", r.k.Name, r.k.Tail(40))
	}
	return nil
}

// busyboxPod is a pod of the run's profile: bound to the node or left to the scheduler,
// with or without the service-account token volume.
func (r *agentRun) busyboxPod(name string, cmd ...string) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "bench"}},
		Spec: v1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []v1.Container{{
				Name: "main", Image: testbed.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent, Command: cmd,
			}},
		},
	}
	if !r.prof.Scheduled {
		p.Spec.NodeName = r.k.NodeName
	}
	if !r.prof.Token {
		p.Spec.AutomountServiceAccountToken = new(bool)
	}
	return p
}

func (r *agentRun) testAppPod(name string, args ...string) *v1.Pod {
	p := r.busyboxPod(name)
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
	// 250 pods take upstream about a minute to tear down on 2 cores.
	slack := time.Duration(len(names)) * time.Second
	if err := r.tr.waitPods(ctx, time.Minute, "pods deleted", names, isDeleted); err != nil {
		return err
	}
	if _, err := waitSandboxesStopped(ctx, r.rt, nil, 2*time.Minute+slack, r.alive); err != nil {
		return fmt.Errorf("after deleting the pods: %w", err)
	}
	return removeSandboxes(ctx, r.rt, true, time.Minute+slack)
}

func (r *agentRun) run(ctx context.Context) error {
	type step struct {
		name string
		fn   func(context.Context) error
	}
	steps := []step{{"sequential pods", r.sequential}, {"CRI calls of one pod", r.criSingle}}
	for i, n := range r.cfg.Batches {
		if i == 0 || r.large() {
			steps = append(steps, step{fmt.Sprintf("batch of %d created and deleted", n), func(ctx context.Context) error { return r.batch(ctx, n) }})
		}
	}
	steps = append(steps, step{"status write-back", r.exitAndCrash})
	if r.prof.Footprint {
		steps = append(steps, step{"footprint", r.footprint})
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
		t0, err := r.create(ctx, r.busyboxPod(name, "sleep", "3600"))
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

// (1) the agent's CRI calls for one pod start: its /metrics before the create and once the
// watch saw the pod Running (calls the agent makes anyway in that time, such as
// upstream's relists, count too: they are part of what a start costs it).
func (r *agentRun) criSingle(ctx context.Context) error {
	name := r.prefix + "-cri"
	before, err := r.api.scrape(ctx)
	if err != nil {
		return err
	}
	if _, err := r.create(ctx, r.busyboxPod(name, "sleep", "3600")); err != nil {
		return err
	}
	if err := r.tr.waitPods(ctx, time.Minute, "pod Running", []string{name}, func(pt *podTrack) bool { return !pt.running.IsZero() }); err != nil {
		return err
	}
	after, err := r.api.scrape(ctx)
	if err != nil {
		return err
	}
	r.res.CRISingle = opsDelta(before.Ops, after.Ops)
	return nil
}

// (2) a batch of n created at once, then (3) deleted at once with grace 0.
func (r *agentRun) batch(ctx context.Context, n int) error {
	b := BatchResult{Pods: n}
	var pods []*v1.Pod
	var names []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-b%d-%03d", r.prefix, n, i)
		pods = append(pods, r.busyboxPod(name, "sleep", "3600"))
		names = append(names, name)
	}
	before, err := r.api.scrape(ctx)
	if err != nil {
		return err
	}
	cpu0, err := snapshotCPU()
	if err != nil {
		return err
	}
	start := time.Now()
	created, err := r.createAll(ctx, pods)
	if err != nil {
		return err
	}
	if err := r.tr.waitPods(ctx, 3*time.Minute, "batch Ready", names, isReady); err != nil {
		return err
	}
	cpu1, err := snapshotCPU()
	if err != nil {
		return err
	}
	b.CPUCreate = cpuSince(cpu0, cpu1)
	var last time.Time
	uids := map[string]bool{}
	for _, name := range names {
		pt := r.tr.get(name)
		if pt.ready.After(last) {
			last = pt.ready
		}
		uids[pt.uid] = true
		b.Ready = append(b.Ready, secs(pt.ready.Sub(created[name])))
	}
	b.AllReady = secs(last.Sub(start))
	b.PodsPerSec = float64(n) / b.AllReady

	// (3) Deletion, grace 0, all at once.
	var mu sync.Mutex
	var wg sync.WaitGroup
	deleted := map[string]time.Time{}
	var firstErr error
	if cpu0, err = snapshotCPU(); err != nil {
		return err
	}
	delStart := time.Now()
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			err := r.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
			mu.Lock()
			defer mu.Unlock()
			deleted[name] = t0
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("delete %s: %w", name, err)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	// The API objects go within a second, the sandboxes only after the 2 s kill window
	// (both agents' least), so waiting for the first does not delay seeing the second.
	if err := r.tr.waitPods(ctx, time.Minute, "batch DELETED", names, isDeleted); err != nil {
		return err
	}
	cpuRemoved, err := snapshotCPU()
	if err != nil {
		return err
	}
	b.CPURemoved = cpuSince(cpu0, cpuRemoved)
	stopped, err := waitSandboxesStopped(ctx, r.rt, uids, 2*time.Minute, r.alive)
	if err != nil {
		return fmt.Errorf("batch sandboxes stopped after deletion: %w", err)
	}
	b.DeleteRuntimeStopped = secs(stopped.Sub(delStart))
	if cpu1, err = snapshotCPU(); err != nil {
		return err
	}
	b.CPUDelete = cpuSince(cpu0, cpu1)
	for _, name := range names {
		b.DeleteGone = append(b.DeleteGone, secs(r.tr.get(name).deleted.Sub(deleted[name])))
	}
	after, err := r.api.scrape(ctx)
	if err != nil {
		return err
	}
	b.CRICalls = opsDelta(before.Ops, after.Ops)
	r.res.Batches = append(r.res.Batches, b)
	return nil
}

// exitDelays is the wait before each of n /exit requests: uniform over [0, period), so
// the samples fall at every phase of a periodic relist of that period.
func exitDelays(n int, period time.Duration, rng *rand.Rand) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(rng.Int64N(int64(period)))
	}
	return out
}

// exitPoll is how often runtimeShowsExited asks the runtime: fine enough to place the
// runtime's part of an exit, light next to what a batch asks of it.
const exitPoll = 5 * time.Millisecond

// runtimeShowsExited polls the runtime's CRI status of container id until it shows the
// container exited, and returns when it first did (zero if it did not within 30 s).
func (r *agentRun) runtimeShowsExited(ctx context.Context, id string) time.Time {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(exitPoll)
	defer tick.Stop()
	for {
		st, err := r.rt.ContainerStatus(ctx, id)
		if err == nil && st.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			return time.Now()
		}
		select {
		case <-ctx.Done():
			return time.Time{}
		case <-tick.C:
		}
	}
}

// (4) status write-back: test-app pods asked to exit over HTTP, one at a time, each after
// a random delay; (5) in the footprint profile a crash-looping pod runs alongside (it
// spends nearly all the time in back-off).
func (r *agentRun) exitAndCrash(ctx context.Context) error {
	var crash *v1.Pod
	var crashT0 time.Time
	if r.prof.Footprint {
		crash = r.busyboxPod(r.prefix+"-crash", "sh", "-c", "exit 1")
		crash.Spec.RestartPolicy = v1.RestartPolicyAlways
		var err error
		if crashT0, err = r.create(ctx, crash); err != nil {
			return err
		}
	}
	var pods []*v1.Pod
	var names []string
	for i := 0; i < r.cfg.ExitSamples; i++ {
		name := fmt.Sprintf("%s-exit-%02d", r.prefix, i)
		p := r.testAppPod(name, "serve", "--http=:8080")
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
	delays := exitDelays(len(names), r.cfg.ExitDelayMax, rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0)))
	for i, n := range names {
		ip := r.tr.get(n).ip
		ctrID := r.tr.get(n).containerID
		sleepCtx(ctx, delays[i])
		r.res.ExitDelay = append(r.res.ExitDelay, delays[i].Seconds())
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
		shown := make(chan time.Time, 1)
		go func() { shown <- r.runtimeShowsExited(ctx, ctrID) }()
		err := r.tr.waitPods(ctx, 30*time.Second, "container terminated after /exit", []string{n}, func(pt *podTrack) bool { return !pt.terminated.IsZero() })
		rtShown := <-shown
		if err != nil {
			return err
		}
		pt := r.tr.get(n)
		if pt.exitCode != 3 {
			return fmt.Errorf("pod %s: exit code %d, want 3", n, pt.exitCode)
		}
		r.res.ExitToStatus = append(r.res.ExitToStatus, secs(pt.terminated.Sub(answered)))
		if rtShown.IsZero() { // the agent saw the exit, so the runtime must show it
			return fmt.Errorf("pod %s: the runtime did not show container %q exited within 30 s", n, ctrID)
		}
		r.res.ExitToRuntime = append(r.res.ExitToRuntime, secs(rtShown.Sub(answered)))
	}
	if crash == nil {
		return nil
	}
	if err := r.tr.waitPods(ctx, 2*time.Minute, "3 restarts of the crash-looping pod", []string{crash.Name}, func(pt *podTrack) bool { return len(pt.restarts) >= 3 }); err != nil {
		return err
	}
	for _, t := range r.tr.get(crash.Name).restarts[:3] {
		r.res.CrashRestarts = append(r.res.CrashRestarts, secs(t.Sub(crashT0)))
	}
	return nil
}

// (6) the agent with no pods for the window (then its Go statistics and minikubelet's
// heap profile, after the window so they do not disturb it), then, in the large rounds,
// with FootprintPods sleeping pods on the node.
func (r *agentRun) footprint(ctx context.Context) error {
	idle, err := measureFootprint(ctx, r.k.Pid(), r.cfg.Idle, r.alive)
	if err != nil {
		return fmt.Errorf("idle footprint: %w", err)
	}
	r.res.Idle = &idle
	if r.res.ImageMiB, err = imageMiB(r.k.Pid()); err != nil {
		return fmt.Errorf("agent binary: %w", err)
	}
	m, err := r.api.scrape(ctx)
	if err != nil {
		return err
	}
	r.res.IdleGo = m.Go
	if r.idleHeap, err = r.saveHeap(ctx, ""); err != nil {
		return err
	}
	if !r.large() || r.cfg.FootprintPods == 0 {
		return nil
	}
	var pods []*v1.Pod
	var names []string
	for i := 0; i < r.cfg.FootprintPods; i++ {
		name := fmt.Sprintf("%s-fp-%03d", r.prefix, i)
		pods = append(pods, r.busyboxPod(name, "sleep", "3600"))
		names = append(names, name)
	}
	start := time.Now()
	if _, err := r.createAll(ctx, pods); err != nil {
		return err
	}
	if err := r.tr.waitPods(ctx, 5*time.Minute, fmt.Sprintf("%d footprint pods Running", len(names)), names, func(pt *podTrack) bool { return !pt.running.IsZero() }); err != nil {
		return err
	}
	var last time.Time
	for _, n := range names {
		if t := r.tr.get(n).running; t.After(last) {
			last = t
		}
	}
	r.res.AllRunning = secs(last.Sub(start))
	if err := r.tr.waitPods(ctx, 2*time.Minute, fmt.Sprintf("%d footprint pods Ready", len(names)), names, isReady); err != nil {
		return err
	}
	sleepCtx(ctx, 5*time.Second) // let the status of the last pods settle
	r.res.FootprintPods = len(names)
	loaded, err := measureFootprint(ctx, r.k.Pid(), r.cfg.Idle, r.alive)
	if err != nil {
		return fmt.Errorf("footprint with %d pods: %w", len(names), err)
	}
	r.res.Loaded = &loaded
	if m, err = r.api.scrape(ctx); err != nil {
		return err
	}
	r.res.LoadedGo = m.Go
	r.loadedHeap, err = r.saveHeap(ctx, fmt.Sprintf("-%dpods", len(names)))
	return err
}

// saveHeap saves minikubelet's heap profile as heapPrefix+suffix+".pb.gz" in the output
// folder and returns that name ("" when this run takes none).
func (r *agentRun) saveHeap(ctx context.Context, suffix string) (string, error) {
	if r.heapPrefix == "" {
		return "", nil
	}
	name := r.heapPrefix + suffix + ".pb.gz"
	if err := r.api.saveHeap(ctx, filepath.Join(r.cfg.Out, name)); err != nil {
		return "", err
	}
	return name, nil
}
