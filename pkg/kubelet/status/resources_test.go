package status

import (
	"encoding/json"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/cm"
)

func rl(kv ...string) v1.ResourceList {
	l := v1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func qty(s string) *resource.Quantity { q := resource.MustParse(s); return &q }

// resourcesOf is the JSON of the status's resource fields: pod, then each container
// status (init, regular, ephemeral) as name=resources/allocatedResources.
func resourcesOf(st v1.PodStatus) string {
	type cr struct {
		N string                   `json:"n"`
		R *v1.ResourceRequirements `json:"r,omitempty"`
		A v1.ResourceList          `json:"a,omitempty"`
	}
	out := struct {
		R  *v1.ResourceRequirements `json:"r,omitempty"`
		A  v1.ResourceList          `json:"a,omitempty"`
		CS []cr                     `json:"cs,omitempty"`
	}{R: st.Resources, A: st.AllocatedResources}
	for _, l := range [][]v1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses, st.EphemeralContainerStatuses} {
		for _, cs := range l {
			out.CS = append(out.CS, cr{cs.Name, cs.Resources, cs.AllocatedResources})
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

func TestGenerateResources(t *testing.T) {
	ready := []cri.Sandbox{{ID: "sb", Ready: true, IPs: []string{"10.0.0.5"}}}
	mem24 := v1.ResourceRequirements{Limits: rl("memory", "24Mi"), Requests: rl("memory", "24Mi")}
	cpu := v1.ResourceRequirements{Limits: rl("cpu", "5m", "memory", "64Mi"), Requests: rl("cpu", "1m", "memory", "32Mi")}
	withRes := func(p *v1.Pod, phase v1.PodPhase, rs ...v1.ResourceRequirements) *v1.Pod {
		p.Status.Phase = phase
		for i := range rs {
			p.Spec.Containers[i].Resources = rs[i]
		}
		return p
	}
	running := func(p *v1.Pod, name, id string, r *v1.ResourceRequirements) *v1.Pod {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, v1.ContainerStatus{Name: name, ContainerID: "containerd://" + id,
			State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}, Resources: r})
		return p
	}
	shares, quota, period, memory := uint64(256), int64(50000), uint64(100000), int64(24<<20)
	ephemeral := withRes(pod(v1.RestartPolicyAlways, []string{"i"}, "a"), v1.PodRunning)
	ephemeral.Spec.EphemeralContainers = []v1.EphemeralContainer{{EphemeralContainerCommon: v1.EphemeralContainerCommon{Name: "e", Image: "img"}}}
	podLevel := withRes(pod(v1.RestartPolicyAlways, nil, "a"), v1.PodPending, mem24)
	podLevel.Spec.Resources = &v1.ResourceRequirements{Limits: rl("cpu", "1", "memory", "64Mi"), Requests: rl("cpu", "1", "memory", "64Mi")}
	cases := []struct {
		name    string
		pod     *v1.Pod
		cs      []cri.Container
		waiting map[string]Waiting
		act     Actuated
		want    string
	}{
		{"burstable oom-killed: allocated", withRes(pod(v1.RestartPolicyNever, nil, "a"), v1.PodFailed, mem24),
			[]cri.Container{inst("a", cri.StateExited, 137, 0)}, nil, Actuated{},
			`{"r":{"limits":{"memory":"24Mi"},"requests":{"memory":"24Mi"}},"a":{"memory":"24Mi"},"cs":[{"n":"a","r":{"limits":{"memory":"24Mi"},"requests":{"memory":"24Mi"}},"a":{"memory":"24Mi"}}]}`},
		{"best effort running, one never ran", withRes(pod(v1.RestartPolicyAlways, nil, "a", "b"), v1.PodRunning),
			[]cri.Container{inst("a", cri.StateRunning, 0, 0)}, map[string]Waiting{"b": {Reason: "ErrImageNeverPull"}}, Actuated{},
			`{"r":{},"cs":[{"n":"a","r":{}},{"n":"b"}]}`},
		{"crash loop keeps the exited instance's", withRes(pod(v1.RestartPolicyAlways, nil, "a"), v1.PodRunning, mem24),
			[]cri.Container{inst("a", cri.StateExited, 1, 0)}, map[string]Waiting{"a": {Reason: "CrashLoopBackOff"}}, Actuated{},
			`{"r":{"requests":{"memory":"24Mi"}},"a":{"memory":"24Mi"},"cs":[{"n":"a","r":{"limits":{"memory":"24Mi"},"requests":{"memory":"24Mi"}},"a":{"memory":"24Mi"}}]}`},
		{"running pod keeps old pod limits the cgroup does not tell",
			running(withRes(pod(v1.RestartPolicyAlways, nil, "a"), v1.PodRunning, mem24), "a", "x", nil),
			[]cri.Container{inst("a", cri.StateRunning, 0, 0)}, nil, Actuated{},
			`{"r":{"requests":{"memory":"24Mi"}},"a":{"memory":"24Mi"},"cs":[{"n":"a","r":{"limits":{"memory":"24Mi"},"requests":{"memory":"24Mi"}},"a":{"memory":"24Mi"}}]}`},
		{"pod cgroup values", withRes(pod(v1.RestartPolicyAlways, nil, "a"), v1.PodRunning, mem24),
			nil, nil, Actuated{PodCgroup: &PodCgroup{CPUShares: &shares, CPUQuota: &quota, CPUPeriod: &period, Memory: &memory}},
			`{"r":{"limits":{"cpu":"500m","memory":"24Mi"},"requests":{"cpu":"250m","memory":"24Mi"}},"a":{"memory":"24Mi"},"cs":[{"n":"a"}]}`},
		{"runtime values, cpu at the floor keeps allocated",
			withRes(pod(v1.RestartPolicyAlways, nil, "a"), v1.PodPending, cpu),
			[]cri.Container{inst("a", cri.StateRunning, 0, 0)}, nil,
			Actuated{Containers: map[string]*ContainerResources{"a0": {CPULimit: qty("10m"), CPURequest: qty("2m"), MemoryLimit: qty("48Mi")}}},
			`{"r":{"limits":{"cpu":"5m","memory":"64Mi"},"requests":{"cpu":"1m","memory":"32Mi"}},"a":{"cpu":"1m","memory":"32Mi"},"cs":[{"n":"a","r":{"limits":{"cpu":"5m","memory":"48Mi"},"requests":{"cpu":"1m","memory":"32Mi"}},"a":{"cpu":"1m","memory":"32Mi"}}]}`},
		{"old values of the same running instance kept",
			running(withRes(pod(v1.RestartPolicyAlways, nil, "a"), v1.PodPending, mem24), "a", "a0", &v1.ResourceRequirements{Limits: rl("memory", "20Mi"), Requests: rl("memory", "20Mi")}),
			[]cri.Container{inst("a", cri.StateRunning, 0, 0)}, nil, Actuated{},
			`{"r":{"limits":{"memory":"24Mi"},"requests":{"memory":"24Mi"}},"a":{"memory":"24Mi"},"cs":[{"n":"a","r":{"limits":{"memory":"20Mi"},"requests":{"memory":"20Mi"}},"a":{"memory":"24Mi"}}]}`},
		{"not of another instance",
			running(withRes(pod(v1.RestartPolicyAlways, nil, "a"), v1.PodPending, mem24), "a", "old", &v1.ResourceRequirements{Limits: rl("memory", "20Mi")}),
			[]cri.Container{inst("a", cri.StateRunning, 0, 0)}, nil, Actuated{},
			`{"r":{"limits":{"memory":"24Mi"},"requests":{"memory":"24Mi"}},"a":{"memory":"24Mi"},"cs":[{"n":"a","r":{"limits":{"memory":"24Mi"},"requests":{"memory":"24Mi"}},"a":{"memory":"24Mi"}}]}`},
		{"init and ephemeral containers", ephemeral,
			[]cri.Container{inst("i", cri.StateExited, 0, 0), inst("a", cri.StateRunning, 0, 0), inst("e", cri.StateRunning, 0, 0)}, nil, Actuated{},
			`{"r":{},"cs":[{"n":"i","r":{}},{"n":"a","r":{}},{"n":"e","r":{}}]}`},
		{"pod-level resources", podLevel, nil, nil, Actuated{},
			`{"r":{"limits":{"cpu":"1","memory":"64Mi"},"requests":{"cpu":"1","memory":"64Mi"}},"a":{"cpu":"1","memory":"64Mi"},"cs":[{"n":"a"}]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := Generate(Input{Pod: tc.pod, State: &cri.PodState{Sandboxes: ready, Containers: tc.cs}, Waiting: tc.waiting,
				Actuated: tc.act, Now: time.Unix(300, 0), RuntimeName: "containerd"})
			if got := resourcesOf(st); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestSharesRoundTrip(t *testing.T) {
	// 250m: 256 shares, cpu.weight 10, read back as 237 shares.
	if !sharesEqualAfterV2RoundTrip(cm.MilliCPUToShares(250), 237) || sharesEqualAfterV2RoundTrip(cm.MilliCPUToShares(250), 256) {
		t.Error("cgroup v2 round trip of 256 shares is not 237")
	}
	if cm.MilliCPUToShares(0) != 2 || cm.MilliCPUToShares(1000) != 1024 || cm.MilliCPUToShares(1e6) != maxShares {
		t.Error("milliCPUToShares")
	}
}
