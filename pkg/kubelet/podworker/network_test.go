package podworker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"

	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
)

// fakeNetwork is the runtime network's readiness as a test sets it.
type fakeNetwork struct {
	err     error
	onReady []func()
}

func (f *fakeNetwork) Err() error        { return f.err }
func (f *fakeNetwork) OnReady(fn func()) { f.onReady = append(f.onReady, fn) }

const netNotReady = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"

// While the runtime's network is not ready a pod off the host network gets no sandbox, as
// upstream's SyncPod: its status is written (Pending, ContainerCreating, not ready to
// start containers), a NetworkNotReady event says why, and it is synced again later; a
// host-network pod goes on. Once the network is back, held pods are woken and start.
func TestSyncNetworkNotReady(t *testing.T) {
	ctx := context.Background()
	for _, hostNetwork := range []bool{false, true} {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"}, Spec: v1.PodSpec{
			NodeName: "n", HostNetwork: hostNetwork,
			Containers: []v1.Container{{Name: "main", Image: "busybox:1.35", ImagePullPolicy: v1.PullIfNotPresent}}}}
		network := &fakeNetwork{err: errors.New(netNotReady)}
		w, rt, st := newSyncFixture(t, pod, func(c *Config) { c.Network = network })
		wk := &worker{uid: pod.UID, wake: make(chan struct{}, 1), pod: pod, waiting: map[string]status.Waiting{}}
		w.pods[pod.UID] = wk // known, so the network's return wakes it
		next, _ := w.sync(ctx, wk)
		events := drain(w.cfg.Recorder.(*record.FakeRecorder))
		ps, _ := st.Status(pod.UID)
		if hostNetwork {
			if len(rt.Sandboxes) != 1 || ps.Phase != v1.PodRunning {
				t.Errorf("host network: %d sandboxes, phase %s; want it running", len(rt.Sandboxes), ps.Phase)
			}
			continue
		}
		if calls := mutations(rt.GetCalls()); len(calls) != 0 || next != networkRetry {
			t.Fatalf("held pod: runtime calls %v, next sync in %v; want none and %v", calls, next, networkRetry)
		}
		if want := "Warning NetworkNotReady network is not ready: " + netNotReady; strings.Join(events, "\n") != want {
			t.Errorf("events %q, want %q", events, want)
		}
		if ps.Phase != v1.PodPending || len(ps.ContainerStatuses) != 1 || ps.ContainerStatuses[0].State.Waiting == nil ||
			ps.ContainerStatuses[0].State.Waiting.Reason != "ContainerCreating" {
			t.Fatalf("held pod's status %+v, want Pending with main waiting ContainerCreating", ps)
		}
		for _, c := range ps.Conditions {
			if c.Type == v1.PodReadyToStartContainers && c.Status != v1.ConditionFalse {
				t.Errorf("PodReadyToStartContainers %s, want False", c.Status)
			}
		}
		// The network comes back: the poll's callback wakes the worker, which starts the pod.
		network.err = nil
		for _, f := range network.onReady {
			f()
		}
		select {
		case <-wk.wake:
		case <-time.After(time.Second):
			t.Fatal("worker not woken when the network came back")
		}
		w.sync(ctx, wk)
		if ps, _ := st.Status(pod.UID); len(rt.Sandboxes) != 1 || ps.Phase != v1.PodRunning {
			t.Errorf("network back: %d sandboxes, phase %s; want it running", len(rt.Sandboxes), ps.Phase)
		}
	}
}
