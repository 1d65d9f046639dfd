package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/minikubelet/minikubelet/test/testbed"
)

var deleteNow = metav1.DeleteOptions{GracePeriodSeconds: new(int64)}

// watchNode calls cond on every version of the node until it returns true.
func watchNode(ctx context.Context, t *testing.T, name string, cond func(*v1.Node) bool) *v1.Node {
	t.Helper()
	return watchUntil(ctx, t, func(opts metav1.ListOptions) (watch.Interface, error) {
		opts.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		return bed.Client.CoreV1().Nodes().Watch(ctx, opts)
	}, func(o any) bool { return cond(o.(*v1.Node)) }).(*v1.Node)
}

// watchUntil watches from "now" (resourceVersion "") so the current state is delivered
// first, then every change; it fails the test when ctx ends first.
func watchUntil(ctx context.Context, t *testing.T, w func(metav1.ListOptions) (watch.Interface, error), cond func(any) bool) any {
	t.Helper()
	for {
		wi, err := w(metav1.ListOptions{})
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		for {
			select {
			case <-ctx.Done():
				wi.Stop()
				t.Fatalf("condition not met before timeout: %v", ctx.Err())
			case ev, ok := <-wi.ResultChan():
				if !ok {
					goto rewatch
				}
				if ev.Type == watch.Added || ev.Type == watch.Modified {
					if cond(ev.Object) {
						wi.Stop()
						return ev.Object
					}
				}
			}
		}
	rewatch:
	}
}

func readyCondition(n *v1.Node) *v1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == v1.NodeReady {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func isReady(n *v1.Node) bool {
	c := readyCondition(n)
	return c != nil && c.Status == v1.ConditionTrue
}

func TestNodeRegistration(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	start := time.Now()
	k := startKubelet(t, "node-reg",
		"--node-labels=example.com/tier=gold,example.com/zone=a",
		"--register-with-taints=example.com/dedicated=e2e:NoSchedule,example.com/quiet:PreferNoSchedule",
		"--max-pods=42")
	node := watchNode(ctx, t, k.NodeName, isReady)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("node Ready %v after start, want within 10s", took)
	} else {
		t.Logf("node Ready %v after process start", took)
	}

	for key, want := range map[string]string{
		"kubernetes.io/hostname": "node-reg", "kubernetes.io/os": "linux", "kubernetes.io/arch": node.Status.NodeInfo.Architecture,
		"example.com/tier": "gold", "example.com/zone": "a",
	} {
		if got := node.Labels[key]; got != want {
			t.Errorf("label %s = %q, want %q", key, got, want)
		}
	}
	wantTaints := []v1.Taint{
		{Key: "example.com/dedicated", Value: "e2e", Effect: v1.TaintEffectNoSchedule},
		{Key: "example.com/quiet", Effect: v1.TaintEffectPreferNoSchedule},
	}
	// The node lifecycle controller adds and removes its own node.kubernetes.io/* taints.
	var ours []v1.Taint
	for _, tn := range node.Spec.Taints {
		if !strings.HasPrefix(tn.Key, "node.kubernetes.io/") {
			ours = append(ours, tn)
		}
	}
	if len(ours) != 2 || !ours[0].MatchTaint(&wantTaints[0]) || ours[0].Value != "e2e" || !ours[1].MatchTaint(&wantTaints[1]) {
		t.Errorf("taints = %+v, want %+v", node.Spec.Taints, wantTaints)
	}
	wantAddrs := []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: testbed.NodeIP}, {Type: v1.NodeHostName, Address: "node-reg"}}
	if fmt.Sprint(node.Status.Addresses) != fmt.Sprint(wantAddrs) {
		t.Errorf("addresses = %v, want %v", node.Status.Addresses, wantAddrs)
	}
	st := node.Status
	if got := st.Capacity.Pods().Value(); got != 42 {
		t.Errorf("capacity pods = %d, want 42", got)
	}
	for _, r := range []v1.ResourceName{v1.ResourceCPU, v1.ResourceMemory, v1.ResourceEphemeralStorage} {
		c, a := st.Capacity[r], st.Allocatable[r]
		if c.Sign() <= 0 || a.Sign() <= 0 || a.Cmp(c) > 0 {
			t.Errorf("%s: capacity %s allocatable %s: want both positive and allocatable <= capacity", r, c.String(), a.String())
		}
	}
	mc, ma := st.Capacity[v1.ResourceMemory], st.Allocatable[v1.ResourceMemory]
	mc.Sub(ma)
	if mc.Value() != 100*1024*1024 { // evictionHard memory.available default
		t.Errorf("memory capacity - allocatable = %s, want 100Mi", mc.String())
	}
	ni := st.NodeInfo
	if !strings.HasPrefix(ni.KubeletVersion, "minikubelet/") {
		t.Errorf("kubeletVersion = %q, want minikubelet/<version>", ni.KubeletVersion)
	}
	if name, version, _ := strings.Cut(ni.ContainerRuntimeVersion, "://"); name == "" || version == "" {
		t.Errorf("containerRuntimeVersion = %q", ni.ContainerRuntimeVersion)
	}
	if ni.OperatingSystem != "linux" || ni.KernelVersion == "" || ni.OSImage == "" || ni.BootID == "" {
		t.Errorf("nodeInfo incomplete: %+v", ni)
	}
	// status.images: the runtime's images (the bed's among them), largest first.
	names := map[string]bool{}
	for i, im := range st.Images {
		for _, n := range im.Names {
			names[n] = true
		}
		if im.SizeBytes <= 0 || i > 0 && im.SizeBytes > st.Images[i-1].SizeBytes {
			t.Errorf("images not largest first with sizes: %+v", st.Images)
			break
		}
	}
	if !names[testbed.PauseImage] || !names[testbed.TestAppImage] || len(st.Images) > 50 {
		t.Errorf("status.images %+v: want the bed's %s and %s, at most 50", st.Images, testbed.PauseImage, testbed.TestAppImage)
	}
	if int(st.DaemonEndpoints.KubeletEndpoint.Port) != k.Port {
		t.Errorf("daemonEndpoints port = %d", st.DaemonEndpoints.KubeletEndpoint.Port)
	}
	want := map[v1.NodeConditionType]string{
		v1.NodeReady: "KubeletReady", v1.NodeMemoryPressure: "KubeletHasSufficientMemory",
		v1.NodeDiskPressure: "KubeletHasNoDiskPressure", v1.NodePIDPressure: "KubeletHasSufficientPID",
	}
	for _, c := range st.Conditions {
		if r, ok := want[c.Type]; ok && c.Reason != r {
			t.Errorf("condition %s reason %q, want %q", c.Type, c.Reason, r)
		}
		delete(want, c.Type)
	}
	if len(want) > 0 {
		t.Errorf("missing conditions %v", want)
	}
	// Upstream's node events, from the kubelet component (sent asynchronously).
	want3 := []string{"Starting", "NodeHasSufficientMemory", "NodeReady"}
	seen := map[string]bool{}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		events, err := bed.Client.CoreV1().Events("default").List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.name", "node-reg").String()})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events.Items {
			if e.Source.Component == "kubelet" {
				seen[e.Reason] = true
			}
		}
		if seen[want3[0]] && seen[want3[1]] && seen[want3[2]] || time.Now().After(deadline) {
			break
		}
	}
	for _, r := range want3 {
		if !seen[r] {
			t.Errorf("no %s event from kubelet; saw %v", r, seen)
		}
	}
}

func TestNodeLeaseRenewals(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	k := startKubelet(t, "node-lease")
	node := watchNode(ctx, t, k.NodeName, isReady)
	var first *coordinationv1.Lease
	var renewals []time.Time
	watchUntil(ctx, t, func(o metav1.ListOptions) (watch.Interface, error) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", k.NodeName).String()
		return bed.Client.CoordinationV1().Leases("kube-node-lease").Watch(ctx, o)
	}, func(o any) bool {
		l := o.(*coordinationv1.Lease)
		if first == nil {
			first = l
		}
		if l.Spec.RenewTime != nil && (len(renewals) == 0 || l.Spec.RenewTime.After(renewals[len(renewals)-1])) {
			renewals = append(renewals, l.Spec.RenewTime.Time)
		}
		return len(renewals) >= 3
	})
	if h := first.Spec.HolderIdentity; h == nil || *h != k.NodeName {
		t.Errorf("holder = %v, want %s", h, k.NodeName)
	}
	if d := first.Spec.LeaseDurationSeconds; d == nil || *d != 40 {
		t.Errorf("leaseDurationSeconds = %v, want 40", d)
	}
	for i := 1; i < len(renewals); i++ {
		if gap := renewals[i].Sub(renewals[i-1]); gap < 8*time.Second || gap > 13*time.Second {
			t.Errorf("renewal gap %v, want about 10s", gap)
		}
	}
	l, err := bed.Client.CoordinationV1().Leases("kube-node-lease").Get(ctx, k.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.OwnerReferences) != 1 || l.OwnerReferences[0].UID != node.UID || l.OwnerReferences[0].Kind != "Node" {
		t.Errorf("lease owner = %+v, want the Node (uid %s)", l.OwnerReferences, node.UID)
	}
}

func TestNodeReregistersAfterDelete(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	k := startKubelet(t, "node-rereg", "--node-labels=example.com/keep=yes")
	old := watchNode(ctx, t, k.NodeName, isReady)
	deleted := time.Now()
	if err := bed.Client.CoreV1().Nodes().Delete(ctx, k.NodeName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	n := watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool { return n.UID != old.UID && isReady(n) })
	t.Logf("re-registered and Ready %v after delete", time.Since(deleted))
	if n.Labels["example.com/keep"] != "yes" {
		t.Errorf("re-registered node lost its labels: %v", n.Labels)
	}
}

func TestNodeNotReadyWhileContainerdIsDown(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "node-rt")
	watchNode(ctx, t, k.NodeName, isReady)
	if err := bed.StopContainerd(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = bed.StartContainerd()
		}
	})
	stopped := time.Now()
	n := watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool { return !isReady(n) })
	t.Logf("NotReady %v after containerd stopped", time.Since(stopped))
	c := readyCondition(n)
	if c.Status != v1.ConditionFalse || c.Reason != "KubeletNotReady" || c.Message != "container runtime is down" {
		t.Errorf("Ready condition = %s/%s/%q, want False/KubeletNotReady/\"container runtime is down\"", c.Status, c.Reason, c.Message)
	}
	if err := bed.StartContainerd(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	back := time.Now()
	watchNode(ctx, t, k.NodeName, isReady)
	t.Logf("Ready again %v after containerd restarted", time.Since(back))
	if k.Exited() {
		t.Fatal("minikubelet exited while containerd was down")
	}
}

func TestNodeGracefulShutdown(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	k := startKubelet(t, "node-term")
	watchNode(ctx, t, k.NodeName, isReady)
	if err := k.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- k.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("minikubelet did not exit within 10s of SIGTERM")
	}
}

// TestNodeBadInput: each bad start-up input gets a one-line error naming the flag or
// file, a non-zero exit and no stack trace; an unreachable API server is retried.
func TestNodeBadInput(t *testing.T) {
	kc, err := bed.NodeKubeconfig("node-bad")
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--root-dir=" + filepath.Join(bed.Dir, "kubelet-node-bad"), "--hostname-override=node-bad", "--node-ip=127.0.0.1", "--healthz-port=0"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing kubeconfig", []string{"--kubeconfig=/nonexistent/kubeconfig", "--container-runtime-endpoint=" + bed.CRIEndpoint()}, "--kubeconfig /nonexistent/kubeconfig"},
		{"no kubeconfig", []string{"--container-runtime-endpoint=" + bed.CRIEndpoint()}, "kubeconfig (--kubeconfig): required"},
		{"unreachable CRI", []string{"--kubeconfig=" + kc, "--container-runtime-endpoint=unix:///nonexistent.sock"}, "--container-runtime-endpoint unix:///nonexistent.sock"},
		{"invalid flag value", []string{"--kubeconfig=" + kc, "--max-pods=-3", "--node-ip=not-an-ip"}, "maxPods (--max-pods)"},
		{"unknown flag", []string{"--kubeconfig=" + kc, "--no-such-flag"}, "unknown flag: --no-such-flag"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bed.MinikubeletBin, append(base, tc.args...)...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("exit 0, want non-zero; output:\n%s", out)
			}
			s := string(out)
			if !strings.Contains(s, tc.want) {
				t.Errorf("output does not name %q:\n%s", tc.want, s)
			}
			if strings.Contains(s, "goroutine ") || strings.Contains(s, "panic") {
				t.Errorf("stack trace in output:\n%s", s)
			}
			last := strings.TrimSpace(s)
			if i := strings.LastIndex(last, "\n"); i >= 0 {
				last = last[i+1:]
			}
			if !strings.HasPrefix(last, "minikubelet: ") {
				t.Errorf("last line %q is not the one-line error", last)
			}
		})
	}

	t.Run("unreachable API server is retried", func(t *testing.T) {
		// A kubeconfig pointing at a closed local port; the process must keep running
		// and keep retrying rather than exit.
		bad := filepath.Join(bed.Dir, "unreachable.kubeconfig")
		if err := testbed.WriteKubeconfig(bad, "https://127.0.0.1:1", bed.PKI.CAFile(), bed.PKI.CAFile(), bed.PKI.CAKeyFile()); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bed.MinikubeletBin, append(base, "--kubeconfig="+bad, "--container-runtime-endpoint="+bed.CRIEndpoint())...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Fatalf("exited (%v) with the API server unreachable; want retries:\n%s", err, out.String())
		case <-time.After(4 * time.Second):
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("exit after SIGTERM: %v", err)
			}
		case <-time.After(3 * time.Second):
			// SIGQUIT makes the Go runtime print every goroutine: shows what blocks.
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			<-done
			t.Errorf("still running 3s after SIGTERM; output:\n%s", out.String())
		}
		if n := strings.Count(out.String(), "retrying"); n < 3 {
			t.Errorf("saw %d retries in 4s, want back-off retries (>= 3):\n%s", n, out.String())
		}
	})
}
