package podworker

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
	"github.com/minikubelet/minikubelet/pkg/kubelet/userns"
)

// usernsRuntime says whether the runtime's default handler supports user namespaces.
type usernsRuntime bool

func (u usernsRuntime) HandlerSupportsUserNamespaces(context.Context, string) (bool, error) {
	return bool(u), nil
}

// A `hostUsers: false` pod gets its own user namespace where the runtime supports it, and
// otherwise no sandbox at all: upstream's FailedCreatePodSandBox with its message, the pod
// Pending in ContainerCreating, never run with the host's users.
func TestSyncHostUsersFalse(t *testing.T) {
	for _, tc := range []struct {
		name      string
		supported bool
		noManager bool
	}{
		{name: "supported", supported: true},
		{name: "runtime without user namespaces"},
		{name: "no manager"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"}, Spec: v1.PodSpec{
				NodeName: "n", HostUsers: new(false), DNSPolicy: v1.DNSDefault,
				Containers: []v1.Container{{Name: "main", Image: "busybox:1.35", ImagePullPolicy: v1.PullIfNotPresent}}}}
			w, rt, st := newSyncFixture(t, pod, func(c *Config) {
				if tc.noManager {
					return
				}
				m, err := userns.New(ctx, userns.Config{PodsDir: c.RootDir + "/pods", MaxPods: 4, Runtime: usernsRuntime(tc.supported),
					Mappings: func(ids uint32) (uint32, uint32, error) { return ids, 4 * ids, nil }})
				if err != nil {
					t.Fatal(err)
				}
				c.Userns = m
			})
			wk := &worker{uid: pod.UID, wake: make(chan struct{}, 1), pod: pod, waiting: map[string]status.Waiting{}}
			w.sync(ctx, wk)
			events := drain(w.cfg.Recorder.(*record.FakeRecorder))
			ps, _ := st.Status(pod.UID)
			if !tc.supported {
				want := "Warning FailedCreatePodSandBox Failed to create pod sandbox: can't set `spec.hostUsers: false`, runtime does not support user namespaces"
				if calls := mutations(rt.GetCalls()); len(calls) != 0 || strings.Join(events, "\n") != want {
					t.Fatalf("runtime calls %v, events %q; want none and %q", calls, events, want)
				}
				if ps.Phase != v1.PodPending || ps.ContainerStatuses[0].State.Waiting == nil || ps.ContainerStatuses[0].State.Waiting.Reason != "ContainerCreating" {
					t.Errorf("status %+v, want Pending in ContainerCreating", ps)
				}
				return
			}
			if calls := mutations(rt.GetCalls()); strings.Join(calls, ",") != "RunPodSandbox,CreateContainer,StartContainer" || ps.Phase != v1.PodRunning {
				t.Fatalf("calls %v, phase %s, events %q; want the pod running", calls, ps.Phase, events)
			}
			var got *runtimeapi.UserNamespace
			for _, sb := range rt.Sandboxes {
				got = sb.GetLinux().GetNamespaces().GetOptions().GetUsernsOptions()
			}
			if got.GetMode() != runtimeapi.NamespaceMode_POD || len(got.GetUids()) != 1 || got.GetUids()[0].GetHostId() < 65536 {
				t.Fatalf("sandbox user namespace %v, want POD with a mapping above the host's root", got)
			}
			// The containers get the same (what the runtime checks).
			if again, err := w.podUserns(ctx, pod); err != nil || !proto.Equal(again, got) {
				t.Errorf("containers' user namespace %v, %v; want the sandbox's %v", again, err, got)
			}
		})
	}
}

// Upstream's declared-features admission refuses a host-network pod in its own user
// namespace (the node never declares UserNamespacesHostNetworkSupport); others pass.
func TestAdmitUserNamespace(t *testing.T) {
	for _, tc := range []struct {
		name        string
		hostNetwork bool
		hostUsers   *bool
		want        string
	}{
		{name: "host network, hostUsers false", hostNetwork: true, hostUsers: new(false),
			want: "PodFeatureUnsupported: Pod requires node features that are not available: UserNamespacesHostNetworkSupport"},
		{name: "host network, hostUsers unset", hostNetwork: true, want: ": "},
		{name: "host network, hostUsers true", hostNetwork: true, hostUsers: new(true), want: ": "},
		{name: "pod network, hostUsers false", hostUsers: new(false), want: ": "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{Spec: v1.PodSpec{HostNetwork: tc.hostNetwork, HostUsers: tc.hostUsers}}
			if reason, msg := admitUserNamespace(pod); reason+": "+msg != tc.want {
				t.Errorf("got %q, want %q", reason+": "+msg, tc.want)
			}
		})
	}
}
