package node

import (
	"encoding/json"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

func inputs() StatusInputs {
	return StatusInputs{
		Machine:        Machine{CPUs: 4, MemoryBytes: 8 << 30, EphemeralBytes: 100 << 30, OperatingSystem: "linux", Architecture: "amd64", KernelVersion: "6.1", OSImage: "Debian", BootID: "b"},
		Addresses:      []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "10.0.0.1"}},
		MaxPods:        110,
		Reserved:       v1.ResourceList{v1.ResourceMemory: resource.MustParse("100Mi"), v1.ResourceCPU: resource.MustParse("500m")},
		RuntimeVersion: "containerd://1.6.20",
		KubeletVersion: "minikubelet/v1",
		KubeletPort:    10250,
	}
}

func cond(s v1.NodeStatus, t v1.NodeConditionType) v1.NodeCondition {
	c := findCondition(s.Conditions, t)
	if c == nil {
		return v1.NodeCondition{}
	}
	return *c
}

func TestBuildStatusResources(t *testing.T) {
	s := BuildStatus(inputs(), v1.NodeStatus{}, metav1.Now())
	check := func(list v1.ResourceList, name v1.ResourceName, want string) {
		t.Helper()
		q := list[name]
		if w := resource.MustParse(want); q.Cmp(w) != 0 {
			t.Errorf("%s = %s, want %s", name, q.String(), want)
		}
	}
	check(s.Capacity, v1.ResourceCPU, "4")
	check(s.Capacity, v1.ResourceMemory, "8Gi")
	check(s.Capacity, v1.ResourcePods, "110")
	check(s.Capacity, v1.ResourceEphemeralStorage, "100Gi")
	check(s.Allocatable, v1.ResourceCPU, "3500m")
	check(s.Allocatable, v1.ResourceMemory, "8092Mi")
	check(s.Allocatable, v1.ResourcePods, "110")
	check(s.Capacity, "hugepages-2Mi", "0")

	in := inputs()
	in.Reserved = v1.ResourceList{v1.ResourceCPU: resource.MustParse("10")}
	s = BuildStatus(in, v1.NodeStatus{}, metav1.Now())
	check(s.Allocatable, v1.ResourceCPU, "0") // never negative
	if s.NodeInfo.KubeletVersion != "minikubelet/v1" || s.NodeInfo.ContainerRuntimeVersion != "containerd://1.6.20" || s.DaemonEndpoints.KubeletEndpoint.Port != 10250 {
		t.Errorf("nodeInfo/daemonEndpoints wrong: %+v %+v", s.NodeInfo, s.DaemonEndpoints)
	}
}

func TestBuildStatusConditions(t *testing.T) {
	t0 := metav1.NewTime(time.Unix(1000, 0))
	t1 := metav1.NewTime(time.Unix(2000, 0))
	cases := []struct {
		name          string
		errs          []string
		pressure      Pressure
		old           v1.NodeStatus
		wantReady     v1.ConditionStatus
		wantReason    string
		wantMessage   string
		wantReadyLTT  metav1.Time
		wantMemReason string
	}{
		{"ready", nil, Pressure{}, v1.NodeStatus{}, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status", t1, "KubeletHasSufficientMemory"},
		{"runtime down", []string{"container runtime is down"}, Pressure{}, v1.NodeStatus{}, v1.ConditionFalse, "KubeletNotReady", "container runtime is down", t1, "KubeletHasSufficientMemory"},
		{"two errors aggregate", []string{"a", "b"}, Pressure{}, v1.NodeStatus{}, v1.ConditionFalse, "KubeletNotReady", "[a, b]", t1, "KubeletHasSufficientMemory"},
		{"memory pressure", nil, Pressure{Memory: true}, v1.NodeStatus{}, v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status", t1, "KubeletHasInsufficientMemory"},
		{"unchanged keeps transition time", nil, Pressure{},
			v1.NodeStatus{Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, LastTransitionTime: t0}}},
			v1.ConditionTrue, "KubeletReady", "kubelet is posting ready status", t0, "KubeletHasSufficientMemory"},
		{"changed gets new transition time", []string{"x"}, Pressure{},
			v1.NodeStatus{Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, LastTransitionTime: t0}}},
			v1.ConditionFalse, "KubeletNotReady", "x", t1, "KubeletHasSufficientMemory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := inputs()
			in.RuntimeErrors, in.Pressure = tc.errs, tc.pressure
			s := BuildStatus(in, tc.old, t1)
			r := cond(s, v1.NodeReady)
			if r.Status != tc.wantReady || r.Reason != tc.wantReason || r.Message != tc.wantMessage {
				t.Errorf("Ready = %s/%s/%q, want %s/%s/%q", r.Status, r.Reason, r.Message, tc.wantReady, tc.wantReason, tc.wantMessage)
			}
			if !r.LastTransitionTime.Equal(&tc.wantReadyLTT) || !r.LastHeartbeatTime.Equal(&t1) {
				t.Errorf("Ready times: transition %v heartbeat %v", r.LastTransitionTime, r.LastHeartbeatTime)
			}
			if m := cond(s, v1.NodeMemoryPressure); m.Reason != tc.wantMemReason {
				t.Errorf("MemoryPressure reason %q, want %q", m.Reason, tc.wantMemReason)
			}
			if len(s.Conditions) != 4 || s.Conditions[3].Type != v1.NodeReady {
				t.Errorf("conditions order: %v", s.Conditions)
			}
		})
	}
}

func TestStatusChangedIgnoresHeartbeat(t *testing.T) {
	a := BuildStatus(inputs(), v1.NodeStatus{}, metav1.NewTime(time.Unix(1, 0)))
	b := BuildStatus(inputs(), a, metav1.NewTime(time.Unix(99, 0)))
	if StatusChanged(a, b) {
		t.Error("heartbeat-only difference reported as a change")
	}
	in := inputs()
	in.RuntimeErrors = []string{"down"}
	c := BuildStatus(in, a, metav1.NewTime(time.Unix(99, 0)))
	if !StatusChanged(a, c) {
		t.Error("Ready flip not reported as a change")
	}
}

func TestConditionEvents(t *testing.T) {
	ready := BuildStatus(inputs(), v1.NodeStatus{}, metav1.Now())
	got := conditionEvents(nil, ready.Conditions)
	want := []string{"NodeHasSufficientMemory", "NodeHasNoDiskPressure", "NodeHasSufficientPID", "NodeReady"}
	if len(got) != len(want) {
		t.Fatalf("first report events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %s, want %s", i, got[i], want[i])
		}
	}
	in := inputs()
	in.RuntimeErrors = []string{"down"}
	notReady := BuildStatus(in, ready, metav1.Now())
	if got := conditionEvents(ready.Conditions, notReady.Conditions); len(got) != 1 || got[0] != "NodeNotReady" {
		t.Errorf("Ready->NotReady events %v, want [NodeNotReady]", got)
	}
	if got := conditionEvents(ready.Conditions, ready.Conditions); len(got) != 0 {
		t.Errorf("no change produced events %v", got)
	}
}

// status.runtimeHandlers as upstream's RuntimeHandlers setter: each handler with both
// features stated, none for a runtime listing none, and what the node had until the
// runtime's handlers are known.
func TestBuildStatusRuntimeHandlers(t *testing.T) {
	had := []v1.NodeRuntimeHandler{{Name: "old"}}
	for _, tc := range []struct {
		name     string
		known    bool
		handlers []cri.RuntimeHandler
		want     string
	}{
		{name: "not yet known", want: `[{"name":"old"}]`},
		{name: "containerd 1.6", known: true, want: `[]`},
		{name: "containerd 2", known: true, handlers: []cri.RuntimeHandler{
			{Name: "", RecursiveReadOnlyMounts: true, UserNamespaces: true}, {Name: "runc", RecursiveReadOnlyMounts: true, UserNamespaces: true}, {Name: "kata"}},
			want: `[{"name":"","features":{"recursiveReadOnlyMounts":true,"userNamespaces":true}},` +
				`{"name":"runc","features":{"recursiveReadOnlyMounts":true,"userNamespaces":true}},` +
				`{"name":"kata","features":{"recursiveReadOnlyMounts":false,"userNamespaces":false}}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := inputs()
			in.RuntimeHandlers, in.RuntimeHandlersKnown = tc.handlers, tc.known
			s := BuildStatus(in, v1.NodeStatus{RuntimeHandlers: had}, metav1.Now())
			got, err := json.Marshal(s.RuntimeHandlers)
			if err != nil || string(got) != tc.want {
				t.Errorf("runtimeHandlers %s, want %s", got, tc.want)
			}
		})
	}
}

// TestBuildStatusFeatures: status.features as upstream's NodeFeatures setter writes it,
// from the runtime's features; a runtime reporting none leaves what the node had.
func TestBuildStatusFeatures(t *testing.T) {
	had := &v1.NodeFeatures{SupplementalGroupsPolicy: new(true)}
	for _, tc := range []struct {
		name     string
		features *cri.RuntimeFeatures
		want     string
	}{
		{name: "none reported (containerd 1.6)", want: `{"supplementalGroupsPolicy":true}`},
		{name: "supported", features: &cri.RuntimeFeatures{SupplementalGroupsPolicy: true}, want: `{"supplementalGroupsPolicy":true}`},
		{name: "not supported", features: &cri.RuntimeFeatures{}, want: `{"supplementalGroupsPolicy":false}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := inputs()
			in.RuntimeFeatures = tc.features
			s := BuildStatus(in, v1.NodeStatus{Features: had}, metav1.Now())
			if got, err := json.Marshal(s.Features); err != nil || string(got) != tc.want {
				t.Errorf("features %s, want %s", got, tc.want)
			}
		})
	}
}

type handlersFake struct {
	known    bool
	features *cri.RuntimeFeatures
}

func (h handlersFake) Known() bool                    { return h.known }
func (h handlersFake) Handlers() []cri.RuntimeHandler { return nil }
func (h handlersFake) Features() *cri.RuntimeFeatures { return h.features }

// A node as the informer holds it gets the features this kubelet reports while its own
// status declaring them has not reached the informer; a node that has features, or a
// runtime not yet known or without features, leaves it as it is.
func TestWithOwnFeatures(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name string
		have *v1.NodeFeatures
		h    RuntimeHandlers
		want *bool // nil: no features
	}{
		{"informer behind", nil, handlersFake{known: true, features: &cri.RuntimeFeatures{SupplementalGroupsPolicy: true}}, &yes},
		{"runtime without the feature", nil, handlersFake{known: true, features: &cri.RuntimeFeatures{}}, &no},
		{"node has features", &v1.NodeFeatures{SupplementalGroupsPolicy: &no}, handlersFake{known: true, features: &cri.RuntimeFeatures{SupplementalGroupsPolicy: true}}, &no},
		{"runtime not known yet", nil, handlersFake{features: &cri.RuntimeFeatures{SupplementalGroupsPolicy: true}}, nil},
		{"runtime reports no features (containerd 1.6)", nil, handlersFake{known: true}, nil},
		{"no runtime handlers", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &v1.Node{Status: v1.NodeStatus{Features: tc.have}}
			got := WithOwnFeatures(n, tc.h).Status.Features
			switch {
			case tc.want == nil && got != nil, tc.want != nil && (got == nil || got.SupplementalGroupsPolicy == nil || *got.SupplementalGroupsPolicy != *tc.want):
				t.Errorf("features %+v, want supplementalGroupsPolicy %v", got, tc.want)
			}
			if n.Status.Features != tc.have {
				t.Error("the informer's node was changed")
			}
		})
	}
}
