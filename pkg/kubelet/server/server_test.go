package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// fakeRuntime is a Runtime with canned answers; stream sessions fail with streamErr.
type fakeRuntime struct {
	state      map[types.UID]*cri.PodState
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.Container
	stats      []*runtimeapi.ContainerStats
	running    atomic.Bool // ContainerStatus answers RUNNING while set
	streamErr  error
}

func (f *fakeRuntime) PodState(_ context.Context, _ string, uid types.UID) (*cri.PodState, error) {
	if st := f.state[uid]; st != nil {
		return st, nil
	}
	return &cri.PodState{UID: uid}, nil
}

func (f *fakeRuntime) Counts() (int, map[cri.ContainerState]int) {
	pods := map[string]bool{}
	for _, sb := range f.sandboxes {
		pods[sb.Labels[cri.LabelPodUID]] = true
	}
	containers := map[cri.ContainerState]int{}
	for _, ct := range f.containers {
		containers[cri.StateOf(ct.State)]++
	}
	return len(pods), containers
}

func (f *fakeRuntime) ListContainers(context.Context, *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	return f.containers, nil
}

func (f *fakeRuntime) ContainerStatus(context.Context, string) (*runtimeapi.ContainerStatus, error) {
	st := runtimeapi.ContainerState_CONTAINER_EXITED
	if f.running.Load() {
		st = runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	return &runtimeapi.ContainerStatus{State: st}, nil
}

func (f *fakeRuntime) ListContainerStats(context.Context, *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	return f.stats, nil
}

func (f *fakeRuntime) Exec(context.Context, string, []string, cri.Streams) (string, error) {
	return "", f.streamErr
}

func (f *fakeRuntime) Attach(context.Context, string, cri.Streams) (string, error) {
	return "", f.streamErr
}

func (f *fakeRuntime) PortForward(context.Context, string, []int32) (string, error) {
	return "", f.streamErr
}

// reviews makes the fake API server answer TokenReviews (tokens maps a token to its user)
// and SubjectAccessReviews (allow decides), counting the calls.
type reviews struct {
	tokens     map[string]authnv1.UserInfo
	allow      func(authzv1.SubjectAccessReviewSpec) bool
	tokenCalls atomic.Int32
	sarCalls   atomic.Int32
	lastSAR    atomic.Pointer[authzv1.SubjectAccessReviewSpec]
}

func (rv *reviews) install(cs *fake.Clientset) {
	cs.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rv.tokenCalls.Add(1)
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview).DeepCopy()
		if u, ok := rv.tokens[tr.Spec.Token]; ok {
			tr.Status = authnv1.TokenReviewStatus{Authenticated: true, User: u}
		}
		return true, tr, nil
	})
	cs.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rv.sarCalls.Add(1)
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview).DeepCopy()
		spec := sar.Spec
		rv.lastSAR.Store(&spec)
		sar.Status.Allowed = rv.allow(spec)
		return true, sar, nil
	})
}

func testKubeletConfig(t *testing.T) *kubeletv1beta1.KubeletConfiguration {
	return &kubeletv1beta1.KubeletConfiguration{
		TypeMeta:   metav1.TypeMeta{Kind: "KubeletConfiguration", APIVersion: "kubelet.config.k8s.io/v1beta1"},
		Address:    "127.0.0.1",
		PodLogsDir: t.TempDir(),
		MaxPods:    110,
		Authentication: kubeletv1beta1.KubeletAuthentication{
			Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: new(bool)},
			Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: ptr(true), CacheTTL: metav1.Duration{Duration: time.Minute}},
		},
		Authorization: kubeletv1beta1.KubeletAuthorization{
			Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook,
			Webhook: kubeletv1beta1.KubeletWebhookAuthorization{
				CacheAuthorizedTTL: metav1.Duration{Duration: time.Minute}, CacheUnauthorizedTTL: metav1.Duration{Duration: time.Minute}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// newTestServer builds a server for node "n1" on an ephemeral port with the given config,
// runtime and pods.
func newTestServer(t *testing.T, k *kubeletv1beta1.KubeletConfiguration, rv *reviews, rt *fakeRuntime, pods ...*v1.Pod) *Server {
	t.Helper()
	cs := fake.NewClientset()
	rv.install(cs)
	if rt == nil {
		rt = &fakeRuntime{}
	}
	s, err := New(Config{Kubelet: k, NodeName: "n1", NodeIPs: []string{"127.0.0.1"}, CertDir: t.TempDir(),
		Client: cs, Runtime: rt, Pods: func() []*v1.Pod { return pods }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.ln.Close() })
	return s
}

func do(t *testing.T, h http.Handler, method, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestNewRejectsMissingFields(t *testing.T) {
	if _, err := New(Config{NodeName: "n1"}); err == nil {
		t.Error("New accepted a config without Kubelet, Client, Runtime and Pods")
	}
	k := testKubeletConfig(t)
	k.Authorization.Mode = "RBAC"
	_, err := New(Config{Kubelet: k, NodeName: "n1", CertDir: t.TempDir(), Client: fake.NewClientset(), Runtime: &fakeRuntime{},
		Pods: func() []*v1.Pod { return nil }})
	if err == nil || !strings.Contains(err.Error(), "authorization.mode") {
		t.Errorf("bad authorization mode: err = %v", err)
	}
}

func TestPodsAndConfigz(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"}}
	rv := &reviews{tokens: map[string]authnv1.UserInfo{"t": {Username: "alice"}}, allow: func(authzv1.SubjectAccessReviewSpec) bool { return true }}
	s := newTestServer(t, testKubeletConfig(t), rv, nil, pod)
	w := do(t, s.Handler(), "GET", "/pods", "t")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"kind":"PodList"`) || !strings.Contains(w.Body.String(), `"uid":"u1"`) {
		t.Errorf("/pods: %d %s", w.Code, w.Body)
	}
	w = do(t, s.Handler(), "GET", "/configz", "t")
	if w.Code != 200 || !strings.HasPrefix(w.Body.String(), `{"kubeletconfig":{`) || !strings.Contains(w.Body.String(), `"maxPods":110`) ||
		strings.Contains(w.Body.String(), `"kind"`) {
		t.Errorf("/configz: %d %s", w.Code, w.Body)
	}
	w = do(t, s.Handler(), "GET", "/healthz", "t")
	if w.Code != 200 || w.Body.String() != "ok" {
		t.Errorf("/healthz: %d %s", w.Code, w.Body)
	}
}

func TestMetrics(t *testing.T) {
	rt := &fakeRuntime{
		sandboxes: []*runtimeapi.PodSandbox{{Id: "s1", Labels: map[string]string{cri.LabelPodUID: "u1"}}, {Id: "s2", Labels: map[string]string{cri.LabelPodUID: "u2"}}},
		containers: []*runtimeapi.Container{{Id: "c1", State: runtimeapi.ContainerState_CONTAINER_RUNNING},
			{Id: "c2", State: runtimeapi.ContainerState_CONTAINER_RUNNING}, {Id: "c3", State: runtimeapi.ContainerState_CONTAINER_EXITED}},
	}
	rv := &reviews{tokens: map[string]authnv1.UserInfo{"t": {Username: "alice"}}, allow: func(authzv1.SubjectAccessReviewSpec) bool { return true }}
	s := newTestServer(t, testKubeletConfig(t), rv, rt)
	// One request through client-go, whose metrics /metrics serves as upstream's does.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"major":"1","minor":"37"}`))
	}))
	defer api.Close()
	if _, err := kubernetes.NewForConfigOrDie(&rest.Config{Host: api.URL}).Discovery().ServerVersion(); err != nil {
		t.Fatal(err)
	}
	w := do(t, s.Handler(), "GET", "/metrics", "t")
	host := strings.TrimPrefix(api.URL, "http://")
	for _, want := range []string{"kubelet_running_pods 2", `kubelet_running_containers{container_state="running"} 2`,
		`kubelet_running_containers{container_state="exited"} 1`, "kubelet_pod_start_duration_seconds_bucket", "go_goroutines", "process_start_time_seconds",
		`rest_client_requests_total{code="200",host="` + host + `",method="GET"} 1`, `rest_client_request_duration_seconds_bucket{host="` + host + `",verb="GET",le="0.005"}`} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if w := do(t, s.Handler(), "GET", "/metrics/probes", "t"); w.Code != 200 {
		t.Errorf("/metrics/probes: %d", w.Code)
	}
}

// /debug/pprof is served unless enableProfilingHandler is false, and authorized as
// nodes/proxy.
func TestProfilingHandler(t *testing.T) {
	var asked []string
	rv := &reviews{tokens: map[string]authnv1.UserInfo{"t": {Username: "alice"}}, allow: func(s authzv1.SubjectAccessReviewSpec) bool {
		asked = append(asked, s.ResourceAttributes.Subresource)
		return s.ResourceAttributes.Subresource == "proxy"
	}}
	s := newTestServer(t, testKubeletConfig(t), rv, nil)
	if w := do(t, s.Handler(), "GET", "/debug/pprof/goroutine?debug=1", "t"); w.Code != 200 || !strings.Contains(w.Body.String(), "goroutine profile:") {
		t.Errorf("/debug/pprof/goroutine: %d %.200s", w.Code, w.Body)
	}
	if strings.Join(asked, ",") != "proxy" {
		t.Errorf("authorized as %v, want nodes/proxy", asked)
	}
	k := testKubeletConfig(t)
	k.EnableProfilingHandler = new(bool)
	off := newTestServer(t, k, rv, nil)
	if w := do(t, off.Handler(), "GET", "/debug/pprof/", "t"); w.Code != 404 {
		t.Errorf("/debug/pprof/ with enableProfilingHandler false: %d, want 404", w.Code)
	}
}
