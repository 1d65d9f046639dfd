package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/test/testbed"
)

func testAppPod(node string, args ...string) *v1.Pod {
	p := newPod(node)
	p.Spec.Containers[0].Image = testbed.TestAppImage
	p.Spec.Containers[0].Command = nil
	p.Spec.Containers[0].Args = args
	return p
}

// TestPodLifecycleExitSeenFromRuntimeEvents: a container exit reaches the API promptly,
// driven by containerd's event stream (the safety-net relist runs only every 5s).
func TestPodLifecycleExitSeenFromRuntimeEvents(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "pod-events")
	watchNode(ctx, t, k.NodeName, isReady)
	pod := testAppPod(k.NodeName, "serve", "--http=:8080")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })

	// The app listens shortly after it starts; ask until it answers.
	var asked time.Time
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(fmt.Sprintf("http://%s:8080/exit?code=3", p.Status.PodIP))
		if err == nil {
			resp.Body.Close()
			asked = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ask the test app to exit: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	watchPod(ctx, t, p, "Failed", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 3 && p.Status.Phase == v1.PodFailed
	})
	took := time.Since(asked)
	// The app exits 50ms after answering; anything near the 5s relist means events are lost.
	t.Logf("exit -> terminated status seen by a watch: %v", took)
	if took > 1500*time.Millisecond {
		t.Errorf("exit took %v to reach the API; want the runtime event path (well under the 5s relist)", took)
	}
	// Which stream carried it: CRI's GetContainerEvents where the runtime serves it
	// (containerd 2.x, CRI-O), containerd's own events on 1.6, which lacks it.
	want := map[string]string{testbed.RuntimeContainerd: "containerd", testbed.RuntimeContainerd2: "cri", testbed.RuntimeCRIO: "cri"}[bed.Runtime()]
	if line := `"Watching container runtime events" source="` + want + `"`; !strings.Contains(k.Tail(100000), line) {
		t.Errorf("node log lacks %s (runtime %s)", line, bed.Runtime())
	}
}

// TestRuntimeCgroupDriverFromRuntime: as upstream v1.37, the cgroup driver is the one the
// runtime reports through CRI RuntimeConfig (containerd 2.x: cgroupfs on the bed), over
// the config's (here systemd, which would put pods in slices this runtime cannot make);
// a runtime without RuntimeConfig (1.6) leaves the config's driver.
func TestRuntimeCgroupDriverFromRuntime(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	var k *testbed.Kubelet
	if bed.Runtime() == testbed.RuntimeContainerd {
		k = startKubelet(t, "rt-cgroup-driver")
	} else {
		k = startKubelet(t, "rt-cgroup-driver", "--cgroup-driver=systemd")
	}
	watchNode(ctx, t, k.NodeName, isReady)
	pod := testAppPod(k.NodeName, "serve", "--http=:8080")
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	line := `"CRI implementation should be updated to support RuntimeConfig. Falling back to using cgroupDriver from kubelet config."`
	if bed.Runtime() != testbed.RuntimeContainerd {
		line = `"Using cgroup driver setting received from the CRI runtime" cgroupDriver="cgroupfs"`
	}
	if !strings.Contains(k.Tail(100000), line) {
		t.Errorf("node log lacks %s (runtime %s)", line, bed.Runtime())
	}
	// The pod's cgroup is upstream's cgroupfs layout, not a systemd slice.
	if cg := get(t, p.Status.PodIP+":8080", "/file?path=/proc/self/cgroup"); !strings.Contains(cg, "/kubepods/besteffort/pod"+string(p.UID)+"/") {
		t.Errorf("container not in the pod's cgroupfs cgroup:\n%s", cg)
	}
}

// TestPodLifecycleSandboxRecreated: killing the pause process kills the pod's sandbox; the
// containers are restarted in a new sandbox with attempt+1, as upstream does.
func TestPodLifecycleSandboxRecreated(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "pod-sandbox")
	watchNode(ctx, t, k.NodeName, isReady)
	p := watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sleep", "3600")), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	firstID := containerStatus(p, "main").ContainerID

	rt, _, closeCRI, err := testbed.CRIClients(bed.CRIEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer closeCRI()
	sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{cri.LabelPodUID: string(p.UID)}}})
	if err != nil || len(sbs.Items) != 1 {
		t.Fatalf("sandboxes of the pod: %v %v", sbs, err)
	}
	st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: sbs.Items[0].Id, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct{ Pid int }
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Pid <= 1 {
		t.Fatalf("pause pid from sandbox info: %v (%s)", err, st.Info["info"])
	}
	if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p = watchPod(ctx, t, p, "running again in a new sandbox", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.State.Running != nil && cs.ContainerID != firstID && podReady(p)
	})
	if n := containerStatus(p, "main").RestartCount; n != 1 {
		t.Errorf("restartCount %d after sandbox recreation, want 1", n)
	}
	sbs, err = rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{cri.LabelPodUID: string(p.UID)}}})
	if err != nil {
		t.Fatal(err)
	}
	ready := 0
	for _, s := range sbs.Items {
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			ready++
			if s.Metadata.Attempt != 1 {
				t.Errorf("new sandbox attempt %d, want 1", s.Metadata.Attempt)
			}
		}
	}
	if ready != 1 {
		t.Errorf("%d ready sandboxes, want 1", ready)
	}
}

// TestRuntimeSupplementalGroupsPolicy: the node declares supplementalGroupsPolicy support
// as its runtime reports it (containerd 2.x yes, 1.6 nothing), and a Strict pod either
// runs with exactly its own groups, the runtime showing them in containerStatuses[].user,
// or is refused at admission with upstream's reason: never run with merged groups.
func TestRuntimeSupplementalGroupsPolicy(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "rt-groups-policy")
	node := watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool {
		return isReady(n) && (n.Status.RuntimeHandlers != nil || bed.Runtime() == testbed.RuntimeContainerd)
	})
	supported := node.Status.Features != nil && node.Status.Features.SupplementalGroupsPolicy != nil && *node.Status.Features.SupplementalGroupsPolicy
	if want := bed.Runtime() != testbed.RuntimeContainerd; supported != want {
		t.Fatalf("node features %+v on %s; want supplementalGroupsPolicy %v", node.Status.Features, bed.Runtime(), want)
	}
	strict := v1.SupplementalGroupsPolicyStrict
	pod := newPod(k.NodeName, "sh", "-c", `echo "groups $(id -G)"; sleep 3600`)
	pod.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: new(int64(65534)), RunAsGroup: new(int64(3000)),
		SupplementalGroups: []int64{4000}, SupplementalGroupsPolicy: &strict}
	p := createPod(ctx, t, pod)
	if !supported {
		p = watchPod(ctx, t, p, "rejected", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
		if want := "Pod was rejected: SupplementalGroupsPolicy=Strict is not supported in this node"; p.Status.Reason != "SupplementalGroupsPolicyNotSupported" || p.Status.Message != want {
			t.Errorf("reason %q message %q; want SupplementalGroupsPolicyNotSupported %q", p.Status.Reason, p.Status.Message, want)
		}
		return
	}
	p = watchPod(ctx, t, p, "Running with its user shown", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return p.Status.Phase == v1.PodRunning && cs != nil && cs.User != nil
	})
	if u := containerStatus(p, "main").User.Linux; u == nil || u.UID != 65534 || u.GID != 3000 || !slices.Equal(u.SupplementalGroups, []int64{3000, 4000}) {
		t.Errorf("containerStatuses[].user.linux %+v; want uid 65534, gid 3000, groups [3000 4000]", u)
	}
	var out string
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out, "groups "); time.Sleep(300 * time.Millisecond) {
		out, _ = podLogs(ctx, p, &v1.PodLogOptions{Container: "main"})
		if time.Now().After(deadline) {
			t.Fatalf("no output: %q", out)
		}
	}
	if !strings.Contains(out, "groups 3000 4000\n") {
		t.Errorf("id -G in the container: %q; want exactly the pod's groups 3000 4000", out)
	}
}
