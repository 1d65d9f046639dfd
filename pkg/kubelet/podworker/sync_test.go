package podworker

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/cri/critesting"
	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
	"github.com/minikubelet/minikubelet/pkg/runtimecache"
	"github.com/minikubelet/minikubelet/pkg/volume"
)

// The effects of sync on cri-api's fake runtime: init containers one at a time, then the
// regular container; a failing init container under Never fails the pod and starts nothing
// more.
func TestSyncDrivesFakeRuntime(t *testing.T) {
	for _, tc := range []struct {
		name      string
		initExit  int32
		policy    v1.RestartPolicy
		wantCalls []string // CRI calls of the second sync that change the runtime
		wantPhase v1.PodPhase
		wantMain  string
	}{
		{name: "init ok", initExit: 0, policy: v1.RestartPolicyAlways,
			wantCalls: []string{"CreateContainer", "StartContainer"}, wantPhase: v1.PodRunning, wantMain: "running"},
		{name: "init fails under Never", initExit: 1, policy: v1.RestartPolicyNever,
			wantCalls: []string{"StopPodSandbox"}, wantPhase: v1.PodFailed, wantMain: "waiting:PodInitializing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"}, Spec: v1.PodSpec{
				NodeName: "n", RestartPolicy: tc.policy, TerminationGracePeriodSeconds: new(int64(2)),
				InitContainers: []v1.Container{{Name: "init", Image: "busybox:1.35", ImagePullPolicy: v1.PullIfNotPresent}},
				Containers:     []v1.Container{{Name: "main", Image: "busybox:1.35", ImagePullPolicy: v1.PullIfNotPresent}},
			}}
			w, rt, st := newSyncFixture(t, pod, nil)
			wk := &worker{uid: pod.UID, wake: make(chan struct{}, 1), pod: pod, waiting: map[string]status.Waiting{}}

			w.sync(ctx, wk)
			if got := mutations(rt.GetCalls()); strings.Join(got, ",") != "RunPodSandbox,CreateContainer,StartContainer" {
				ps, _ := st.Status(pod.UID)
				t.Fatalf("first sync: %v, want the sandbox and the init container only; status %+v; events %v", got, ps.InitContainerStatuses, drain(w.cfg.Recorder.(*record.FakeRecorder)))
			}
			if len(rt.Containers) != 1 {
				t.Fatalf("%d containers after the first sync, want the init container", len(rt.Containers))
			}
			cache := w.cfg.State.(*runtimecache.Cache)
			for id, c := range rt.Containers { // the init container ends, and the runtime says so
				c.State, c.ExitCode, c.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, tc.initExit, time.Now().UnixNano()
				cache.Event(cri.Event{Kind: cri.EventExit, ID: id})
			}
			cache.HandleExits(ctx)
			rt.Called = nil
			w.sync(ctx, wk)
			if got := mutations(rt.GetCalls()); strings.Join(got, ",") != strings.Join(tc.wantCalls, ",") {
				t.Errorf("second sync: %v, want %v", got, tc.wantCalls)
			}
			ps, ok := st.Status(pod.UID)
			if !ok || ps.Phase != tc.wantPhase {
				t.Fatalf("phase %q, want %q", ps.Phase, tc.wantPhase)
			}
			main := ps.ContainerStatuses[0].State
			got := "running"
			if main.Waiting != nil {
				got = "waiting:" + main.Waiting.Reason
			} else if main.Running == nil {
				got = "other"
			}
			if got != tc.wantMain {
				t.Errorf("main container %s, want %s", got, tc.wantMain)
			}
		})
	}
}

// newSyncFixture makes Workers for node "n" on cri-api's fake runtime (busybox:1.35
// pulled already), with a fake clientset holding pod, a volume manager and a status
// manager, all in a temporary root directory; extra, if not nil, changes the Config
// before New. It returns the Workers, the fake runtime service and the status manager.
func newSyncFixture(t *testing.T, pod *v1.Pod, extra func(*Config)) (*Workers, *critest.FakeRuntimeService, *status.Manager) {
	t.Helper()
	dir := t.TempDir()
	rt, img := critest.NewFakeRuntimeService(), critest.NewFakeImageService()
	img.SetFakeImages([]string{"busybox:1.35"})
	fixtureImages = img
	client := fake.NewClientset(pod)
	vols, err := volume.New(volume.Config{Client: client, RootDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	st := status.NewManager(client)
	runtime := critesting.NewFake(rt, img)
	cache, err := runtimecache.New(runtimecache.Config{Runtime: runtime, Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	runtime.OnChange(cache.Observe)
	cache.Relist(context.Background())
	cfg := Config{NodeName: "n", Runtime: runtime, State: cache, Status: st, Recorder: record.NewFakeRecorder(100),
		Client: client, RootDir: dir, PodLogsDir: filepath.Join(dir, "logs"), Volumes: vols}
	if extra != nil {
		extra(&cfg)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w, rt, st
}

// fixtureImages is the image fake of the newest newSyncFixture (for call counting).
var fixtureImages *critest.FakeImageService

// mutations keeps the calls that change the runtime.
func mutations(calls []string) []string {
	var out []string
	for _, c := range calls {
		switch c {
		case "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer":
			out = append(out, c)
		}
	}
	return out
}

func drain(r *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-r.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// With the systemd cgroup driver the sandbox's cgroup parent is the pod's slice path; the
// pod's cgroup is made before the sandbox and removed with the pod (the cgroup manager
// stops the slice, which systemd keeps active otherwise).
func TestSyncSystemdCgroupDriver(t *testing.T) {
	ctx := context.Background()
	pod := bestEffortPod("ab-cd", "")
	cg := &recordedCgroups{}
	w, rt, _ := newSyncFixture(t, pod, func(c *Config) {
		c.CgroupsPerQOS, c.CgroupDriver, c.Cgroups = true, "systemd", cg
	})
	wk := &worker{uid: pod.UID, wake: make(chan struct{}, 1), pod: pod, waiting: map[string]status.Waiting{}}
	w.sync(ctx, wk)
	if len(rt.Sandboxes) != 1 {
		t.Fatalf("%d sandboxes", len(rt.Sandboxes))
	}
	if cfg, err := cri.SandboxConfig(pod, 0, w.sandboxOptions()); err != nil ||
		cfg.Linux.CgroupParent != "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podab_cd.slice" {
		t.Errorf("cgroup parent %q, %v", cfg.GetLinux().GetCgroupParent(), err)
	}
	if strings.Join(cg.pods, ",") != "ensure ab-cd" {
		t.Errorf("pod cgroup calls while the pod runs: %v", cg.pods)
	}
	wk.removed = true
	w.sync(ctx, wk)
	if strings.Join(cg.pods, ",") != "ensure ab-cd,remove ab-cd" {
		t.Errorf("pod cgroup calls %v, want the pod's removed", cg.pods)
	}
}

// Starting a one-container pod costs the mutations plus one status call per new object
// and one image status: no lists (issue budget: at most 8 CRI calls, images included).
func TestSyncStartCallBudget(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"}, Spec: v1.PodSpec{
		NodeName: "n", Containers: []v1.Container{{Name: "main", Image: "busybox:1.35", ImagePullPolicy: v1.PullIfNotPresent}}}}
	w, rt, st := newSyncFixture(t, pod, nil)
	img := fixtureImages
	rt.Called, img.Called = nil, nil
	wk := &worker{uid: pod.UID, wake: make(chan struct{}, 1), pod: pod, waiting: map[string]status.Waiting{}}
	w.sync(context.Background(), wk)
	if ps, _ := st.Status(pod.UID); ps.Phase != v1.PodRunning {
		t.Fatalf("phase %q", ps.Phase)
	}
	got := append(rt.GetCalls(), img.Called...)
	want := []string{"RunPodSandbox", "PodSandboxStatus", "CreateContainer", "StartContainer", "ContainerStatus", "ImageStatus"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("runtime calls %v, want %v", got, want)
	}
	// A second sync of the running pod asks the runtime nothing.
	rt.Called, img.Called = nil, nil
	w.sync(context.Background(), wk)
	if c := append(rt.GetCalls(), img.Called...); len(c) != 0 {
		t.Fatalf("steady sync made runtime calls %v", c)
	}
}

// observedGeneration follows the spec the worker acted on, as upstream: a spec change
// is observed at once even when it cannot be applied (an image that cannot be pulled),
// and once the pod finished, later changes (a deletion's bump) are no longer observed.
func TestSyncObservedGeneration(t *testing.T) {
	ctx := context.Background()
	for _, policy := range []v1.RestartPolicy{v1.RestartPolicyAlways, v1.RestartPolicyNever} {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1", Generation: 1}, Spec: v1.PodSpec{
			NodeName: "n", RestartPolicy: policy, TerminationGracePeriodSeconds: new(int64(2)),
			Containers: []v1.Container{{Name: "main", Image: "busybox:1.35", ImagePullPolicy: v1.PullIfNotPresent}}}}
		w, rt, st := newSyncFixture(t, pod, nil)
		wk := &worker{uid: pod.UID, wake: make(chan struct{}, 1), pod: pod, waiting: map[string]status.Waiting{}}
		observed := func(step string, want int64, phase v1.PodPhase) v1.PodStatus {
			t.Helper()
			ps, _ := st.Status(pod.UID)
			if ps.ObservedGeneration != want || ps.Phase != phase {
				t.Fatalf("%s: observedGeneration %d phase %s, want %d %s", step, ps.ObservedGeneration, ps.Phase, want, phase)
			}
			for _, c := range ps.Conditions {
				if c.ObservedGeneration != want {
					t.Errorf("%s: condition %s observedGeneration %d, want %d", step, c.Type, c.ObservedGeneration, want)
				}
			}
			return ps
		}
		update := func(change func(*v1.Pod)) {
			p := wk.pod.DeepCopy()
			change(p)
			p.Generation++
			wk.pod = p
		}
		w.sync(ctx, wk)
		observed("started", 1, v1.PodRunning)
		if policy == v1.RestartPolicyAlways {
			update(func(p *v1.Pod) { p.Spec.Containers[0].Image = "absent:1" })
			fixtureImages.InjectError("PullImage", errors.New("not found"))
			w.sync(ctx, wk)
			if ps := observed("unpullable image", 2, v1.PodRunning); ps.ContainerStatuses[0].State.Waiting == nil ||
				ps.ContainerStatuses[0].State.Waiting.Reason != "ErrImagePull" {
				t.Fatalf("main %+v, want waiting ErrImagePull", ps.ContainerStatuses[0].State)
			}
			continue
		}
		cache := w.cfg.State.(*runtimecache.Cache)
		for id, c := range rt.Containers {
			c.State, c.ExitCode, c.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, 0, time.Now().UnixNano()
			cache.Event(cri.Event{Kind: cri.EventExit, ID: id})
		}
		cache.HandleExits(ctx)
		w.sync(ctx, wk)
		observed("succeeded", 1, v1.PodSucceeded)
		update(func(p *v1.Pod) { p.Spec.ActiveDeadlineSeconds = new(int64(60)) })
		w.sync(ctx, wk)
		observed("after finishing", 1, v1.PodSucceeded)
	}
}

// A pod that finished releases its cgroup once its sandbox is stopped, as upstream's
// syncTerminatedPod: the worker no longer holds it, while it still holds a running pod's.
func TestSyncFinishedPodReleasesCgroup(t *testing.T) {
	ctx := context.Background()
	pod := bestEffortPod("uid-1", v1.RestartPolicyNever)
	cg := &recordedCgroups{}
	w, rt, st := newSyncFixture(t, pod, func(c *Config) { c.CgroupsPerQOS, c.Cgroups = true, cg })
	w.startedOnce.Do(func() { close(w.started) }) // HoldsCgroup looks the worker up
	wk := &worker{uid: pod.UID, wake: make(chan struct{}, 1), pod: pod, waiting: map[string]status.Waiting{}}
	w.pods[pod.UID] = wk
	w.sync(ctx, wk)
	if !w.HoldsCgroup(pod.UID) || strings.Join(cg.pods, ",") != "ensure uid-1" {
		t.Fatalf("running pod: holds %v, cgroup calls %v", w.HoldsCgroup(pod.UID), cg.pods)
	}
	cache := w.cfg.State.(*runtimecache.Cache)
	for id, c := range rt.Containers {
		c.State, c.ExitCode, c.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, 0, time.Now().UnixNano()
		cache.Event(cri.Event{Kind: cri.EventExit, ID: id})
	}
	cache.HandleExits(ctx)
	for range 2 { // the exit, then the stopped sandbox
		w.sync(ctx, wk)
	}
	if ps, _ := st.Status(pod.UID); ps.Phase != v1.PodSucceeded {
		t.Fatalf("phase %s", ps.Phase)
	}
	if w.HoldsCgroup(pod.UID) || strings.Join(cg.pods, ",") != "ensure uid-1,remove uid-1" {
		t.Errorf("finished pod: holds %v, cgroup calls %v; want released and removed once", w.HoldsCgroup(pod.UID), cg.pods)
	}
	w.sync(ctx, wk)
	if strings.Join(cg.pods, ",") != "ensure uid-1,remove uid-1" {
		t.Errorf("cgroup calls after another sync: %v", cg.pods)
	}
}

// A pod deleted with grace 0 is removed by the API server itself: when the removal
// arrives while the worker stops the pod, the worker neither writes a final status nor
// deletes the pod (upstream's status manager finds it gone first, too).
func TestSyncDeletedWithGraceZeroIsNotDeletedAgain(t *testing.T) {
	ctx := context.Background()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"}, Spec: v1.PodSpec{
		NodeName: "n", TerminationGracePeriodSeconds: new(int64(2)),
		Containers: []v1.Container{{Name: "main", Image: "busybox:1.35", ImagePullPolicy: v1.PullIfNotPresent}}}}
	w, _, _ := newSyncFixture(t, pod, nil)
	wk := &worker{uid: pod.UID, wake: make(chan struct{}, 1), pod: pod, waiting: map[string]status.Waiting{}}
	w.sync(ctx, wk)
	deleting := pod.DeepCopy()
	deleting.DeletionTimestamp, deleting.DeletionGracePeriodSeconds = &metav1.Time{Time: time.Now()}, new(int64)
	wk.pod = deleting
	// The API server's removal is delivered while the container is being stopped.
	cache := w.cfg.State.(*runtimecache.Cache)
	w.cfg.Runtime.OnChange(func(ch cri.Change) {
		cache.Observe(ch)
		if ch.Op == cri.ContainerStopped {
			wk.mu.Lock()
			wk.removed = true
			wk.mu.Unlock()
		}
	})
	client := w.cfg.Client.(*fake.Clientset)
	client.ClearActions()
	w.sync(ctx, wk)
	for _, a := range client.Actions() {
		if a.GetResource().Resource == "pods" {
			t.Errorf("API call on the removed pod: %s %s", a.GetVerb(), a.GetSubresource())
		}
	}
}

// A pod deleted with a grace period ends in upstream's order: its containers and sandbox
// stopped, its cgroup removed, then the object deleted; the stopped sandbox is removed
// only once the pod is gone from the API, off the path of the deletion.
func TestSyncGracefulDeletionOrder(t *testing.T) {
	ctx := context.Background()
	pod := bestEffortPod("uid-1", "")
	cg := &recordedCgroups{}
	w, rt, _ := newSyncFixture(t, pod, func(c *Config) { c.CgroupsPerQOS, c.Cgroups = true, cg })
	wk := &worker{uid: pod.UID, wake: make(chan struct{}, 1), pod: pod, waiting: map[string]status.Waiting{}}
	w.sync(ctx, wk)
	deleting := pod.DeepCopy()
	deleting.DeletionTimestamp, deleting.DeletionGracePeriodSeconds = &metav1.Time{Time: time.Now()}, new(int64(2))
	wk.pod = deleting

	client := w.cfg.Client.(*fake.Clientset)
	var atDelete []string // the runtime's calls and cgroup calls when the delete came
	client.PrependReactor("delete", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		atDelete = append(mutations(rt.GetCalls()), cg.pods...)
		return false, nil, nil
	})
	rt.Called = nil
	for i := 0; i < 3 && atDelete == nil; i++ {
		w.sync(ctx, wk)
	}
	if got := strings.Join(atDelete, ","); got != "StopContainer,StopPodSandbox,ensure uid-1,remove uid-1" {
		t.Fatalf("at the delete: %q, want the container and sandbox stopped and the cgroup removed, the sandbox not yet removed", got)
	}
	wk.mu.Lock()
	wk.removed = true // the informer's delete
	wk.mu.Unlock()
	rt.Called = nil
	w.sync(ctx, wk)
	if got := mutations(rt.GetCalls()); !slices.Contains(got, "RemovePodSandbox") {
		t.Errorf("after the pod is gone: %v, want the sandbox removed", got)
	}
}

// bestEffortPod is pod ns/p on node "n" with one busybox container and no resources, its
// QoS class set as the API server sets it ("" policy: the default, Always).
func bestEffortPod(uid types.UID, policy v1.RestartPolicy) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: uid}, Spec: v1.PodSpec{
		NodeName: "n", RestartPolicy: policy, TerminationGracePeriodSeconds: new(int64(2)),
		Containers: []v1.Container{{Name: "main", Image: "busybox:1.35", ImagePullPolicy: v1.PullIfNotPresent}},
	}, Status: v1.PodStatus{QOSClass: v1.PodQOSBestEffort}}
}
