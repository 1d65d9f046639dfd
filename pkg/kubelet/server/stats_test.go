package server

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

func TestStatsSummary(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u1"}}
	labels := map[string]string{cri.LabelPodUID: "u1"}
	cpu := func(ns uint64) *runtimeapi.CpuUsage {
		return &runtimeapi.CpuUsage{Timestamp: 1, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: ns}}
	}
	mem := func(b uint64) *runtimeapi.MemoryUsage {
		return &runtimeapi.MemoryUsage{Timestamp: 1, WorkingSetBytes: &runtimeapi.UInt64Value{Value: b}}
	}
	rt := &fakeRuntime{stats: []*runtimeapi.ContainerStats{
		{Attributes: &runtimeapi.ContainerAttributes{Id: "a"}, Cpu: cpu(100), Memory: mem(1000)},
		{Attributes: &runtimeapi.ContainerAttributes{Id: "b"}, Cpu: cpu(50), Memory: mem(500)},
	}}
	rt.containers = []*runtimeapi.Container{
		{Id: "a", Labels: labels, Metadata: &runtimeapi.ContainerMetadata{Name: "app"}},
		{Id: "b", Labels: labels, Metadata: &runtimeapi.ContainerMetadata{Name: "side"}},
		{Id: "x", Labels: map[string]string{cri.LabelPodUID: "someone-else"}},
	}
	rv := &reviews{tokens: map[string]authnv1.UserInfo{"t": {Username: "x"}}, allow: func(authzv1.SubjectAccessReviewSpec) bool { return true }}
	cs := newTestServer(t, testKubeletConfig(t), rv, nil, pod)
	cs.cfg.Runtime = rt
	proc := t.TempDir()
	os.WriteFile(filepath.Join(proc, "stat"), []byte("cpu  100 5 50 1000 7 2 3 1 0 0\ncpu0 1 2 3 4\nbtime 1700000000\n"), 0o644)
	os.WriteFile(filepath.Join(proc, "meminfo"), []byte("MemTotal: 1000 kB\nMemFree: 400 kB\nMemAvailable: 600 kB\n"), 0o644)
	cs.node.procRoot = proc

	w := do(t, cs.Handler(), "GET", "/stats/summary", "t")
	var sum statsapi.Summary
	if err := json.Unmarshal(w.Body.Bytes(), &sum); err != nil || w.Code != 200 {
		t.Fatalf("%d %s %v", w.Code, w.Body, err)
	}
	n := sum.Node
	if n.NodeName != "n1" || n.StartTime.Unix() != 1700000000 || *n.CPU.UsageCoreNanoSeconds != 161*1e7 ||
		*n.Memory.WorkingSetBytes != 400*1024 || *n.Memory.AvailableBytes != 600*1024 || *n.Memory.UsageBytes != 600*1024 {
		t.Errorf("node stats %+v cpu %+v memory %+v", n, n.CPU, n.Memory)
	}
	if len(sum.Pods) != 1 || len(sum.Pods[0].Containers) != 2 {
		t.Fatalf("pods %+v", sum.Pods)
	}
	p := sum.Pods[0]
	if p.PodRef.UID != "u1" || *p.CPU.UsageCoreNanoSeconds != 150 || *p.Memory.WorkingSetBytes != 1500 {
		t.Errorf("pod stats %+v cpu %+v memory %+v", p.PodRef, p.CPU, p.Memory)
	}
}
