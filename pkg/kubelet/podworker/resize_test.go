package podworker

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	resourcehelper "k8s.io/component-helpers/resource"
	critest "k8s.io/cri-api/pkg/apis/testing"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
)

func reqLim(cpuReq, memReq, cpuLim, memLim string) v1.ResourceRequirements {
	l := func(cpu, mem string) v1.ResourceList {
		out := v1.ResourceList{}
		if cpu != "" {
			out[v1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			out[v1.ResourceMemory] = resource.MustParse(mem)
		}
		return out
	}
	return v1.ResourceRequirements{Requests: l(cpuReq, memReq), Limits: l(cpuLim, memLim)}
}

// TestComputeActionsResize: a running container whose allocation differs from what it
// runs with is resized in place, or restarted when its resizePolicy says so for a
// resource that changed; an equal value in another unit is no change; a container with
// nothing recorded is left alone; an image change still recreates.
func TestComputeActionsResize(t *testing.T) {
	old := reqLim("100m", "32Mi", "200m", "64Mi")
	cases := []struct {
		name     string
		desired  v1.ResourceRequirements
		policy   []v1.ContainerResizePolicy
		actuated *v1.ResourceRequirements
		sidecar  bool
		want     string // resize=<n> kill=<message> start=<list>
	}{
		{"no change", old, nil, &old, false, "resize=0 kill= start="},
		{"same value other unit", reqLim("0.1", "32Mi", "200m", "65536Ki"), nil, &old, false, "resize=0 kill= start="},
		{"cpu and memory in place", reqLim("150m", "48Mi", "300m", "96Mi"), nil, &old, false, "resize=1 kill= start="},
		{"memory restart policy, memory changed", reqLim("100m", "48Mi", "200m", "96Mi"),
			[]v1.ContainerResizePolicy{{ResourceName: v1.ResourceMemory, RestartPolicy: v1.RestartContainer}}, &old, false,
			"resize=0 kill=Container a resize requires restart start=a/1 "},
		{"memory restart policy, only cpu changed", reqLim("150m", "32Mi", "300m", "64Mi"),
			[]v1.ContainerResizePolicy{{ResourceName: v1.ResourceMemory, RestartPolicy: v1.RestartContainer}}, &old, false, "resize=1 kill= start="},
		{"nothing recorded", reqLim("150m", "48Mi", "300m", "96Mi"), nil, nil, false, "resize=0 kill= start="},
		{"sidecar in place", reqLim("150m", "48Mi", "300m", "96Mi"), nil, &old, true, "resize=1 kill= start="},
		{"sidecar restart", reqLim("150m", "32Mi", "300m", "64Mi"),
			[]v1.ContainerResizePolicy{{ResourceName: v1.ResourceCPU, RestartPolicy: v1.RestartContainer}}, &old, true,
			"resize=0 kill=Container s resize requires restart start=s/1 "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := spec(v1.RestartPolicyAlways, nil, "a")
			cs := []cri.Container{ctr("a", "sb", cri.StateRunning, 0, 0)}
			target := &pod.Spec.Containers[0]
			if tc.sidecar {
				always := v1.ContainerRestartPolicyAlways
				pod.Spec.InitContainers = []v1.Container{{Name: "s", Image: "img", RestartPolicy: &always}}
				cs = append(cs, ctr("s", "sb", cri.StateRunning, 0, 0))
				target = &pod.Spec.InitContainers[0]
			}
			target.Resources, target.ResizePolicy = tc.desired, tc.policy
			for i := range cs {
				cs[i].Hash = cri.ContainerHash(containerByName(pod, cs[i].Name))
			}
			actuated := func(name string) (v1.ResourceRequirements, bool) {
				if name != target.Name || tc.actuated == nil {
					return v1.ResourceRequirements{}, false
				}
				return *tc.actuated, true
			}
			a := computeActions(pod, &cri.PodState{Sandboxes: readySandbox, Containers: cs}, false, noBackOffFn, nil, actuated)
			var kills []string
			for _, k := range a.Kill {
				kills = append(kills, k.Message)
			}
			got := "resize=" + strconv.Itoa(len(a.Resize)) + " kill=" + strings.Join(kills, ",") + " start=" + names(a.Start)
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if len(a.Resize) == 1 && (a.Resize[0].Desired.Limits.Memory().Cmp(*tc.desired.Limits.Memory()) != 0 || a.Resize[0].Current.Limits.Memory().Cmp(*old.Limits.Memory()) != 0) {
				t.Errorf("resize %+v", a.Resize[0])
			}
		})
	}
}

func noBackOffFn(*v1.Container, *cri.Container) bool { return false }

// TestContainerHashIgnoresResources: as upstream, only the name and the image make a
// container's hash, so a resize never recreates it.
func TestContainerHashIgnoresResources(t *testing.T) {
	a := v1.Container{Name: "c", Image: "img", Resources: reqLim("100m", "", "", "")}
	b := a
	b.Resources = reqLim("200m", "", "", "")
	if cri.ContainerHash(&a) != cri.ContainerHash(&b) {
		t.Error("resources changed the hash")
	}
	b.Image = "img2"
	if cri.ContainerHash(&a) == cri.ContainerHash(&b) {
		t.Error("the image did not change the hash")
	}
}

// TestResizeMessage: upstream's event text.
func TestResizeMessage(t *testing.T) {
	pod := spec(v1.RestartPolicyAlways, nil, "c")
	pod.Spec.Containers[0].Resources = reqLim("350m", "", "", "")
	got := resizeMessage("Pod resize OutOfcpu", pod, 2, "Node didn't have enough resource: cpu, requested: 350, used: 1850, capacity: 2000")
	want := `Pod resize OutOfcpu: {"containers":[{"name":"c","resources":{"requests":{"cpu":"350m"}}}],"generation":2,"error":"Node didn't have enough resource: cpu, requested: 350, used: 1850, capacity: 2000"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// recordedCgroups logs pod cgroup changes with the number of runtime calls made before,
// and pod cgroups made and removed.
type recordedCgroups struct {
	rt   *critest.FakeRuntimeService
	log  []string
	pods []string
}

func (r *recordedCgroups) EnsurePod(p *v1.Pod) error {
	r.pods = append(r.pods, "ensure "+string(p.UID))
	return nil
}
func (r *recordedCgroups) RemovePod(p *v1.Pod) error {
	r.pods = append(r.pods, "remove "+string(p.UID))
	return nil
}
func (r *recordedCgroups) UpdateQOS() error { return nil }
func (r *recordedCgroups) ResizePod(_ *v1.Pod, name v1.ResourceName) error {
	r.log = append(r.log, fmt.Sprintf("pod %s after %d runtime updates", name, strings.Count(strings.Join(r.rt.GetCalls(), ","), "UpdateContainerResources")))
	return nil
}
func (r *recordedCgroups) PodLimit(pod *v1.Pod, name v1.ResourceName) int64 {
	l := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{})
	if name == v1.ResourceCPU {
		return l.Cpu().MilliValue()
	}
	return l.Memory().Value()
}

// TestSyncResizeOrder: a running Guaranteed pod's memory grows and its CPU shrinks: the
// pod cgroup's memory is set before the container's, its CPU after, with no restart; the
// resize is started, then completed on the next sync, and the status shows the new
// allocation with no resize condition left.
func TestSyncResizeOrder(t *testing.T) {
	ctx := context.Background()
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-r", Generation: 1}, Spec: v1.PodSpec{
		NodeName: "n", Containers: []v1.Container{{Name: "main", Image: "busybox:1.35", ImagePullPolicy: v1.PullIfNotPresent,
			Resources: reqLim("200m", "64Mi", "200m", "64Mi")}}}}
	cg := &recordedCgroups{}
	w, rt, st := newSyncFixture(t, pod, func(c *Config) {
		c.CgroupsPerQOS, c.Cgroups = true, cg
		c.Allocatable = v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("4Gi"), v1.ResourcePods: resource.MustParse("110")}
	})
	cg.rt = rt
	wk := &worker{uid: pod.UID, wake: make(chan struct{}, 1), pod: pod, waiting: map[string]status.Waiting{}, admitted: true}
	w.sync(ctx, wk)
	resized := pod.DeepCopy()
	resized.Generation = 2
	resized.Spec.Containers[0].Resources = reqLim("100m", "128Mi", "100m", "128Mi")
	wk.pod = resized
	rt.Called = nil
	w.sync(ctx, wk)
	if got := strings.Join(mutations(rt.GetCalls()), ","); got != "" {
		t.Errorf("resize restarted the container: %s", got)
	}
	want := "pod memory after 0 runtime updates;pod cpu after 2 runtime updates"
	if got := strings.Join(cg.log, ";"); got != want {
		t.Errorf("pod cgroup changes %q, want %q", got, want)
	}
	w.sync(ctx, wk)
	events := strings.Join(drain(w.cfg.Recorder.(*record.FakeRecorder)), "\n")
	if !strings.Contains(events, "Normal ResizeStarted Pod resize started: ") || !strings.Contains(events, `Normal ResizeCompleted Pod resize completed: {"containers":[{"name":"main","resources":{"limits":{"cpu":"100m","memory":"128Mi"},"requests":{"cpu":"100m","memory":"128Mi"}}}],"generation":2}`) {
		t.Errorf("events:\n%s", events)
	}
	ps, _ := st.Status(pod.UID)
	if cs := ps.ContainerStatuses[0]; cs.AllocatedResources.Memory().String() != "128Mi" || cs.Resources.Limits.Cpu().String() != "100m" {
		t.Errorf("status resources %+v allocated %+v", cs.Resources, cs.AllocatedResources)
	}
	for _, c := range ps.Conditions {
		if c.Type == v1.PodResizeInProgress || c.Type == v1.PodResizePending {
			t.Errorf("condition left: %+v", c)
		}
	}
}
