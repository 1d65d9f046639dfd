package eviction

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/minikubelet/minikubelet/pkg/kubelet/metrics"
)

// podSpec is a pod and its usage for the fake summary.
type podSpec struct {
	name             string
	memReq, memLimit string // "" none
	priority         int32
	workingSet       uint64
	emptyDir         uint64 // bytes used in its emptyDir "data"
	sizeLimit        string
	static           bool
}

func makePod(s podSpec) *v1.Pod {
	c := v1.Container{Name: "c", Resources: v1.ResourceRequirements{Requests: v1.ResourceList{}, Limits: v1.ResourceList{}}}
	if s.memReq != "" {
		c.Resources.Requests[v1.ResourceMemory] = resource.MustParse(s.memReq)
	}
	if s.memLimit != "" {
		c.Resources.Limits[v1.ResourceMemory] = resource.MustParse(s.memLimit)
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: "ns", UID: types.UID(s.name), Annotations: map[string]string{}},
		Spec: v1.PodSpec{Containers: []v1.Container{c}, Priority: &s.priority}}
	ed := &v1.EmptyDirVolumeSource{}
	if s.sizeLimit != "" {
		l := resource.MustParse(s.sizeLimit)
		ed.SizeLimit = &l
	}
	pod.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: ed}}}
	if s.static {
		pod.Annotations["kubernetes.io/config.source"] = "file"
	}
	return pod
}

func podStats(s podSpec, now metav1.Time) statsapi.PodStats {
	return statsapi.PodStats{PodRef: statsapi.PodReference{Name: s.name, Namespace: "ns", UID: s.name},
		Memory:      &statsapi.MemoryStats{Time: now, WorkingSetBytes: u64(s.workingSet)},
		Containers:  []statsapi.ContainerStats{{Name: "c", Memory: &statsapi.MemoryStats{Time: now, WorkingSetBytes: u64(s.workingSet)}}},
		VolumeStats: []statsapi.VolumeStats{{Name: "data", FsStats: statsapi.FsStats{UsedBytes: u64(s.emptyDir)}}},
	}
}

type evicted struct {
	pod       string
	grace     int64
	message   string
	condition *v1.PodCondition
}

type fakeEvictor struct{ got []evicted }

func (f *fakeEvictor) Evict(_ context.Context, pod *v1.Pod, grace int64, msg string, cond *v1.PodCondition) error {
	f.got = append(f.got, evicted{pod.Name, grace, msg, cond})
	return nil
}

type bed struct {
	m        *Manager
	ev       *fakeEvictor
	rec      *record.FakeRecorder
	clock    *clocktesting.FakeClock
	memAvail uint64 // node memory available
	nodeFs   uint64 // node fs available of 100Gi
	pods     []podSpec
	reclaims []string
	// onImages runs when unused images are deleted (frees disk).
	onImages func()
}

func newBed(t *testing.T, s Settings, pods ...podSpec) *bed {
	t.Helper()
	ts, err := ParseThresholds(s)
	if err != nil {
		t.Fatal(err)
	}
	b := &bed{ev: &fakeEvictor{}, rec: record.NewFakeRecorder(100), clock: clocktesting.NewFakeClock(time.Unix(1000, 0)),
		memAvail: 4 << 30, nodeFs: 50 << 30, pods: pods}
	b.m, err = New(Config{
		Thresholds: ts, PressureTransitionPeriod: time.Minute, MaxPodGracePeriodSeconds: 20, LocalStorageIsolation: true,
		Summary:          b.summary,
		DedicatedImageFs: func(context.Context) (bool, error) { return false, nil },
		ActivePods: func() []*v1.Pod {
			var out []*v1.Pod
			for _, p := range b.pods {
				if !slices.ContainsFunc(b.ev.got, func(e evicted) bool { return e.pod == p.name }) {
					out = append(out, makePod(p))
				}
			}
			return out
		},
		Evictor: b.ev,
		DeleteUnusedContainers: func(context.Context) error {
			b.reclaims = append(b.reclaims, "containers")
			return nil
		},
		DeleteUnusedImages: func(context.Context) error {
			b.reclaims = append(b.reclaims, "images")
			if b.onImages != nil {
				b.onImages()
			}
			return nil
		},
		Recorder: b.rec, Node: &v1.ObjectReference{Kind: "Node", Name: "n"}, Clock: b.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *bed) summary(context.Context) (*statsapi.Summary, error) {
	now := metav1.NewTime(b.clock.Now())
	sum := &statsapi.Summary{Node: statsapi.NodeStats{
		Memory: &statsapi.MemoryStats{Time: now, AvailableBytes: u64(b.memAvail), WorkingSetBytes: u64(8<<30 - b.memAvail)},
		Fs:     &statsapi.FsStats{Time: now, AvailableBytes: u64(b.nodeFs), CapacityBytes: u64(100 << 30), InodesFree: u64(1e6), Inodes: u64(2e6)},
	}}
	for _, p := range b.pods {
		sum.Pods = append(sum.Pods, podStats(p, now))
	}
	return sum, nil
}

// round advances the clock and synchronizes once.
func (b *bed) round(t *testing.T) {
	t.Helper()
	b.clock.Step(10 * time.Second)
	if err := b.m.synchronize(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (b *bed) evictedNames() []string {
	var out []string
	for _, e := range b.ev.got {
		out = append(out, e.pod)
	}
	return out
}

func TestMemoryEvictionOrder(t *testing.T) {
	b := newBed(t, Settings{Hard: map[string]string{"memory.available": "1Gi"}},
		podSpec{name: "guaranteed", memReq: "500Mi", memLimit: "500Mi", workingSet: 400 << 20},
		podSpec{name: "burstable-over", memReq: "100Mi", workingSet: 300 << 20},
		podSpec{name: "besteffort-big", workingSet: 900 << 20},
		podSpec{name: "besteffort-small-high-prio", workingSet: 50 << 20, priority: 1000},
		podSpec{name: "static-critical", workingSet: 2 << 30, static: true},
	)
	b.round(t)
	if len(b.ev.got) != 0 || len(b.m.Conditions()) != 0 {
		t.Fatalf("evicted %v without pressure", b.evictedNames())
	}
	b.memAvail = 500 << 20
	agesBefore := statsAgeCount(t, "memory.available")
	for range 5 {
		b.round(t)
	}
	// Each round that ranked pods recorded how old its stats were (as upstream, the last
	// one too, which found only the critical pod left).
	if got := statsAgeCount(t, "memory.available") - agesBefore; got != 5 {
		t.Errorf("kubelet_eviction_stats_age_seconds{memory.available} got %d observations, want 5", got)
	}
	// The static pod is critical: never evicted. Over their requests first (by priority,
	// then usage above request), then the Guaranteed pod within its request.
	want := []string{"besteffort-big", "burstable-over", "besteffort-small-high-prio", "guaranteed"}
	if got := b.evictedNames(); !slices.Equal(got, want) {
		t.Fatalf("evicted %v, want %v", got, want)
	}
	first := b.ev.got[0]
	wantMsg := "The node was low on resource: memory. Threshold quantity: 1Gi, available: 500Mi. Container c was using 900Mi, request is 0, has larger consumption of memory. "
	if first.message != wantMsg {
		t.Errorf("message %q\nwant    %q", first.message, wantMsg)
	}
	if first.grace != 1 {
		t.Errorf("hard eviction grace %d, want 1", first.grace)
	}
	if c := first.condition; c == nil || c.Type != v1.DisruptionTarget || c.Reason != v1.PodReasonTerminationByKubelet || c.Message != wantMsg {
		t.Errorf("condition %+v", c)
	}
	if got := b.m.Conditions(); !slices.Equal(got, []v1.NodeConditionType{v1.NodeMemoryPressure}) {
		t.Errorf("conditions %v", got)
	}
	events := drain(b.rec)
	if !slices.Contains(events, "Warning EvictionThresholdMet Attempting to reclaim memory") {
		t.Errorf("no EvictionThresholdMet event in %v", events)
	}
	wantEvent := "Warning Evicted " + wantMsg + " map[offending_containers:c offending_containers_usage:900Mi starved_resource:memory]"
	if !slices.Contains(events, wantEvent) {
		t.Errorf("no Evicted event in %v", events)
	}
	if len(b.reclaims) != 0 {
		t.Errorf("memory pressure reclaimed disk: %v", b.reclaims)
	}
}

// statsAgeCount is the number of kubelet_eviction_stats_age_seconds observations for
// signal so far.
func statsAgeCount(t *testing.T, signal string) uint64 {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "kubelet_eviction_stats_age_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == signal {
				return m.GetHistogram().GetSampleCount()
			}
		}
	}
	return 0
}

func drain(r *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-r.Events:
			out = append(out, strings.TrimSpace(e))
		default:
			return out
		}
	}
}

func TestPressureRelievedAndTransition(t *testing.T) {
	b := newBed(t, Settings{Hard: map[string]string{"memory.available": "1Gi"}},
		podSpec{name: "hog", workingSet: 2 << 30}, podSpec{name: "quiet", memReq: "100Mi", memLimit: "100Mi", workingSet: 50 << 20})
	b.memAvail = 500 << 20
	b.round(t)
	if got := b.evictedNames(); !slices.Equal(got, []string{"hog"}) {
		t.Fatalf("evicted %v", got)
	}
	b.memAvail = 3 << 30 // the hog's memory is back
	b.round(t)
	if len(b.ev.got) != 1 {
		t.Fatalf("evicted %v after the pressure was relieved", b.evictedNames())
	}
	if len(b.m.Conditions()) != 1 {
		t.Fatalf("condition gone before the transition period: %v", b.m.Conditions())
	}
	for range 6 {
		b.round(t)
	}
	if len(b.m.Conditions()) != 0 {
		t.Fatalf("condition stays after the transition period: %v", b.m.Conditions())
	}
}

func TestDiskReclaimBeforeEviction(t *testing.T) {
	b := newBed(t, Settings{Hard: map[string]string{"nodefs.available": "10Gi"}}, podSpec{name: "writer", emptyDir: 5 << 30})
	b.nodeFs = 8 << 30
	b.onImages = func() { b.nodeFs = 20 << 30 }
	b.round(t)
	if !slices.Equal(b.reclaims, []string{"containers", "images"}) {
		t.Fatalf("reclaims %v", b.reclaims)
	}
	if len(b.ev.got) != 0 {
		t.Fatalf("evicted %v although images freed enough", b.evictedNames())
	}
	// Images free too little now: the writer goes.
	b.onImages = nil
	b.nodeFs = 8 << 30
	b.round(t)
	if got := b.evictedNames(); !slices.Equal(got, []string{"writer"}) {
		t.Fatalf("evicted %v", got)
	}
	if !strings.HasPrefix(b.ev.got[0].message, "The node was low on resource: ephemeral-storage. Threshold quantity: 10Gi, available: 8Gi. ") {
		t.Errorf("message %q", b.ev.got[0].message)
	}
}

func TestSoftThresholdGrace(t *testing.T) {
	b := newBed(t, Settings{Soft: map[string]string{"memory.available": "1Gi"}, SoftGracePeriod: map[string]string{"memory.available": "30s"}},
		podSpec{name: "hog", workingSet: 2 << 30})
	b.memAvail = 500 << 20
	for range 3 {
		b.round(t)
	}
	if len(b.ev.got) != 0 {
		t.Fatalf("evicted before the grace period: %v", b.evictedNames())
	}
	if len(b.m.Conditions()) != 1 {
		t.Fatalf("no pressure condition during the grace period")
	}
	b.round(t)
	if len(b.ev.got) != 1 || b.ev.got[0].grace != 20 {
		t.Fatalf("evictions %+v, want the hog with evictionMaxPodGracePeriod 20", b.ev.got)
	}
}

func TestEmptyDirSizeLimit(t *testing.T) {
	b := newBed(t, Settings{}, podSpec{name: "within", emptyDir: 1 << 20, sizeLimit: "2Mi"}, podSpec{name: "over", emptyDir: 3 << 20, sizeLimit: "2Mi"})
	b.round(t)
	if got := b.evictedNames(); !slices.Equal(got, []string{"over"}) {
		t.Fatalf("evicted %v", got)
	}
	if e := b.ev.got[0]; e.message != `Usage of EmptyDir volume "data" exceeds the limit "2Mi". ` || e.condition != nil || e.grace != 1 {
		t.Errorf("eviction %+v", e)
	}
}

func TestAdmit(t *testing.T) {
	b := newBed(t, Settings{Hard: map[string]string{"memory.available": "1Gi", "nodefs.available": "10Gi"}})
	bestEffort, burstable := makePod(podSpec{name: "be"}), makePod(podSpec{name: "bu", memReq: "10Mi"})
	tolerating := makePod(podSpec{name: "tol"})
	tolerating.Spec.Tolerations = []v1.Toleration{{Key: v1.TaintNodeMemoryPressure, Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoSchedule}}
	critical := makePod(podSpec{name: "crit", static: true})
	check := func(pod *v1.Pod, want string) {
		t.Helper()
		if _, msg := b.m.Admit(pod); msg != want {
			t.Errorf("%s: %q, want %q", pod.Name, msg, want)
		}
	}
	b.round(t)
	check(bestEffort, "")
	b.memAvail = 500 << 20
	b.round(t)
	check(bestEffort, "The node had condition: [MemoryPressure]. ")
	check(burstable, "")
	check(tolerating, "")
	check(critical, "")
	b.nodeFs = 1 << 30
	b.round(t)
	check(burstable, "The node had condition: [DiskPressure MemoryPressure]. ")
	if reason, _ := b.m.Admit(burstable); reason != "Evicted" {
		t.Errorf("reason %q", reason)
	}
	check(critical, "")
}

func TestNewRequiresFields(t *testing.T) {
	if _, err := New(Config{}); err == nil || errors.Is(err, context.Canceled) {
		t.Fatal("New accepted an empty config")
	}
}
