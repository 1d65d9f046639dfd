package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// The fake runtime's answers for /runningpods, /run and /checkpoint: sandboxes as given,
// no command runs and no checkpoint is taken (nodeRuntime below answers those).
func (f *fakeRuntime) ListSandboxes(context.Context, *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	return f.sandboxes, nil
}

func (f *fakeRuntime) RunInContainer(context.Context, string, []string) ([]byte, error) {
	return nil, errdefs.ErrNotImplemented
}

func (f *fakeRuntime) CheckpointContainer(context.Context, string, string, int64) error {
	return errdefs.ErrNotImplemented
}

// nodeRuntime answers /run and /checkpoint with the given functions.
type nodeRuntime struct {
	*fakeRuntime
	runFn        func(id string, cmd []string) ([]byte, error)
	checkpointFn func(id, location string, timeout int64) error
}

func (n *nodeRuntime) RunInContainer(_ context.Context, id string, cmd []string) ([]byte, error) {
	return n.runFn(id, cmd)
}

func (n *nodeRuntime) CheckpointContainer(_ context.Context, id, location string, timeout int64) error {
	return n.checkpointFn(id, location, timeout)
}

// newNodeServer is a server that lets every request in (AlwaysAllow), for the handlers.
func newNodeServer(t *testing.T, k *kubeletv1beta1.KubeletConfiguration, rt Runtime, logDir string, pods ...*v1.Pod) http.Handler {
	t.Helper()
	k.Authentication.Anonymous.Enabled = ptr(true)
	k.Authentication.Webhook.Enabled = ptr(false)
	k.Authorization.Mode = kubeletv1beta1.KubeletAuthorizationModeAlwaysAllow
	s, err := New(Config{Kubelet: k, NodeName: "n1", NodeIPs: []string{"127.0.0.1"}, CertDir: t.TempDir(),
		Runtime: rt, Pods: func() []*v1.Pod { return pods }, RootDir: t.TempDir(), NodeLogDir: logDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.ln.Close() })
	return s.Handler()
}

func runningState(uid types.UID, name, id string) *cri.PodState {
	return &cri.PodState{UID: uid, Containers: []cri.Container{{ID: id, Name: name, State: cri.StateRunning}}}
}

func TestRunningPods(t *testing.T) {
	labels := func(uid, name, c string) map[string]string {
		l := map[string]string{cri.LabelPodUID: uid, cri.LabelPodName: name, cri.LabelPodNamespace: "ns"}
		if c != "" {
			l[cri.LabelContainer] = c
		}
		return l
	}
	rt := &fakeRuntime{
		sandboxes: []*runtimeapi.PodSandbox{{Id: "s1", Labels: labels("u1", "p1", "")}, {Id: "s2", Labels: labels("u2", "p2", "")}},
		containers: []*runtimeapi.Container{
			{Id: "c1", Labels: labels("u1", "p1", "app"), Image: &runtimeapi.ImageSpec{Image: "busybox:1"}},
			{Id: "c2", Labels: labels("u1", "p1", "side"), Image: &runtimeapi.ImageSpec{Image: "pause:1"}}},
	}
	h := newNodeServer(t, testKubeletConfig(t), rt, t.TempDir())
	for _, path := range []string{"/runningpods/", "/runningpods"} {
		w := do(t, h, "GET", path, "")
		if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
		var list v1.PodList
		if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil {
			t.Fatal(err)
		}
		if list.Kind != "PodList" || len(list.Items) != 2 {
			t.Fatalf("%s: %s", path, w.Body)
		}
		p := list.Items[0]
		if p.Name != "p1" || p.Namespace != "ns" || p.UID != "u1" || len(p.Spec.Containers) != 2 ||
			p.Spec.Containers[0].Name != "app" || p.Spec.Containers[0].Image != "busybox:1" {
			t.Errorf("%s: first pod %+v", path, p)
		}
		if p := list.Items[1]; p.Name != "p2" || len(p.Spec.Containers) != 0 {
			t.Errorf("%s: second pod %+v", path, p)
		}
	}
	if w := do(t, h, "POST", "/runningpods/", ""); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /runningpods/: %d", w.Code)
	}
}

func TestRun(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}, Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c"}}}}
	var gotCmd []string
	rt := &nodeRuntime{
		fakeRuntime: &fakeRuntime{state: map[types.UID]*cri.PodState{"u1": runningState("u1", "c", "cid")}},
		runFn: func(id string, cmd []string) ([]byte, error) {
			gotCmd = cmd
			if cmd[0] == "false" {
				return []byte("oops"), &cri.ExitError{Code: 1}
			}
			if id != "cid" {
				t.Errorf("ran in %q", id)
			}
			return []byte("hello\n"), nil
		},
	}
	h := newNodeServer(t, testKubeletConfig(t), rt, t.TempDir(), pod)
	w := do(t, h, "POST", "/run/ns/p/c?cmd=echo+hello", "")
	if w.Code != 200 || w.Body.String() != "hello\n" || strings.Join(gotCmd, "|") != "echo|hello" {
		t.Errorf("run: %d %q, cmd %q", w.Code, w.Body, gotCmd)
	}
	if w := do(t, h, "POST", "/run/ns/p/u1/c?cmd=echo+hello", ""); w.Code != 200 {
		t.Errorf("run with uid: %d %s", w.Code, w.Body)
	}
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/run/ns/p/c?cmd=ls", http.StatusMethodNotAllowed, ""},
		{"POST", "/run/ns/nope/c?cmd=ls", http.StatusNotFound, "pod does not exist"},
		{"POST", "/run/ns/p/nope?cmd=ls", http.StatusInternalServerError, `container not found ("nope")`},
		{"POST", "/run/ns/p/other-uid/c?cmd=ls", http.StatusInternalServerError, `container not found ("c")`},
		{"POST", "/run/ns/p/c?cmd=false", http.StatusInternalServerError, ""},
	} {
		w := do(t, h, tc.method, tc.path, "")
		if w.Code != tc.code || tc.body != "" && w.Body.String() != tc.body {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, w.Code, w.Body, tc.code, tc.body)
		}
	}
}

func TestCheckpoint(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c"}}, InitContainers: []v1.Container{{Name: "init"}}}}
	var gotTimeout int64
	var gotLocation string
	unimplemented := errgrpc.ToNative(status.Error(codes.Unimplemented, "method CheckpointContainer not implemented"))
	rt := &nodeRuntime{
		fakeRuntime: &fakeRuntime{state: map[types.UID]*cri.PodState{"u1": runningState("u1", "c", "cid")}},
		checkpointFn: func(id, location string, timeout int64) error {
			gotTimeout, gotLocation = timeout, location
			if timeout == 99 {
				return unimplemented
			}
			return nil
		},
	}
	h := newNodeServer(t, testKubeletConfig(t), rt, t.TempDir(), pod)
	w := do(t, h, "POST", "/checkpoint/ns/p/c?timeout=1&timeout=7", "")
	if w.Code != 200 || gotTimeout != 7 || !strings.Contains(gotLocation, "/checkpoints/checkpoint-p_ns-c-") ||
		w.Body.String() != `{"items":["`+gotLocation+`"]}` {
		t.Errorf("checkpoint: %d %s (timeout %d, location %s)", w.Code, w.Body, gotTimeout, gotLocation)
	}
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/checkpoint/ns/p/c", http.StatusMethodNotAllowed, ""},
		{"POST", "/checkpoint/ns/nope/c", http.StatusNotFound, "pod does not exist"},
		{"POST", "/checkpoint/ns/p/nope", http.StatusNotFound, "container nope does not exist"},
		{"POST", "/checkpoint/ns/p/c?timeout=x", http.StatusNotFound, "cannot parse value of timeout parameter"},
		{"POST", "/checkpoint/ns/p/init", http.StatusInternalServerError, "checkpointing of ns/p/init failed (container init not found)"},
		{"POST", "/checkpoint/ns/p/c?timeout=99", http.StatusInternalServerError,
			"checkpointing of ns/p/c failed (rpc error: code = Unimplemented desc = method CheckpointContainer not implemented)"},
	} {
		w := do(t, h, tc.method, tc.path, "")
		if w.Code != tc.code || tc.body != "" && w.Body.String() != tc.body {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, w.Code, w.Body, tc.code, tc.body)
		}
	}
	k := testKubeletConfig(t)
	k.FeatureGates = map[string]bool{"ContainerCheckpoint": false}
	if w := do(t, newNodeServer(t, k, rt, t.TempDir(), pod), "POST", "/checkpoint/ns/p/c", ""); w.Code != http.StatusNotFound {
		t.Errorf("gate off: %d %s", w.Code, w.Body)
	}
}
