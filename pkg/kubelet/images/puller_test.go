package images

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/util/flowcontrol"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testclock "k8s.io/utils/clock/testing"
)

// fakeRuntime has the images of present (image -> ref); inspecting fails with inspectErr
// and pulls with pullErr when set. Pulled images become present.
type fakeRuntime struct {
	present    map[string]string
	inspectErr error
	pullErr    error
	pulls      []string // "<image> <user>" of each pull (user "" when anonymous)
}

func (f *fakeRuntime) ImageRef(_ context.Context, image string) (string, error) {
	return f.present[image], f.inspectErr
}

func (f *fakeRuntime) ImageStatus(_ context.Context, image string) (*runtimeapi.Image, error) {
	if ref, ok := f.present[image]; ok {
		return &runtimeapi.Image{Id: ref, Size: 1234}, nil
	}
	return nil, nil
}

func (f *fakeRuntime) PullImage(_ context.Context, image string, auth *runtimeapi.AuthConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	f.pulls = append(f.pulls, image+" "+auth.GetUsername())
	if f.pullErr != nil {
		return "", f.pullErr
	}
	if f.present == nil {
		f.present = map[string]string{}
	}
	f.present[image] = "sha256:pulled"
	return "sha256:pulled", nil
}

// newTestPuller returns a Puller on rt whose back-off runs on the returned clock, and the
// events it records ("<type> <reason> <message>").
func newTestPuller(rt *fakeRuntime, secrets ...*v1.Secret) (*Puller, *testclock.FakeClock, *[]string) {
	var events []string
	cfg := Config{Runtime: rt, Event: func(_ *v1.Pod, _ *v1.Container, typ, reason, format string, args ...any) {
		events = append(events, typ+" "+reason+" "+fmt.Sprintf(format, args...))
	}}
	if len(secrets) > 0 {
		cs := fake.NewClientset()
		for _, s := range secrets {
			_, _ = cs.CoreV1().Secrets(s.Namespace).Create(context.Background(), s, metav1.CreateOptions{})
		}
		cfg.Client = cs
	}
	p := New(cfg)
	clock := testclock.NewFakeClock(time.Now())
	p.backOff = flowcontrol.NewFakeBackOff(backOffInitial, backOffMax, clock)
	return p, clock, &events
}

func testPod(image string, policy v1.PullPolicy) (*v1.Pod, *v1.Container) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "main", Image: image, ImagePullPolicy: policy}}}}
	return pod, &pod.Spec.Containers[0]
}

// reasons keeps "<type> <reason>" of each event.
func reasons(events []string) string {
	var out []string
	for _, e := range events {
		f := strings.SplitN(e, " ", 3)
		out = append(out, f[0]+" "+f[1])
	}
	return strings.Join(out, ", ")
}

// The pull-policy decisions: what is pulled, the waiting reason and message, the events.
func TestEnsureImagePolicy(t *testing.T) {
	for _, tc := range []struct {
		name       string
		image      string
		policy     v1.PullPolicy
		present    bool
		inspectErr error
		pullErr    error
		wantPulls  string
		wantRef    string
		wantReason string
		wantMsg    string
		wantEvents string
	}{
		{name: "Always, present: pulled again", image: "reg/app:1", policy: v1.PullAlways, present: true,
			wantPulls: "reg/app:1 ", wantRef: "sha256:pulled", wantEvents: "Normal Pulling, Normal Pulled"},
		{name: "Always, absent", image: "reg/app:1", policy: v1.PullAlways,
			wantPulls: "reg/app:1 ", wantRef: "sha256:pulled", wantEvents: "Normal Pulling, Normal Pulled"},
		{name: "IfNotPresent, present", image: "reg/app:1", policy: v1.PullIfNotPresent, present: true,
			wantRef: "sha256:here", wantEvents: "Normal Pulled"},
		{name: "IfNotPresent, absent", image: "reg/app:1", policy: v1.PullIfNotPresent,
			wantPulls: "reg/app:1 ", wantRef: "sha256:pulled", wantEvents: "Normal Pulling, Normal Pulled"},
		{name: "Never, present", image: "reg/app:1", policy: v1.PullNever, present: true,
			wantRef: "sha256:here", wantEvents: "Normal Pulled"},
		{name: "Never, absent", image: "reg/app:1", policy: v1.PullNever,
			wantReason: "ErrImageNeverPull", wantMsg: `Container image "reg/app:1" is not present with pull policy of Never`,
			wantEvents: "Warning ErrImageNeverPull"},
		{name: "untagged gets :latest", image: "reg/app", policy: v1.PullAlways,
			wantPulls: "reg/app:latest ", wantRef: "sha256:pulled", wantEvents: "Normal Pulling, Normal Pulled"},
		{name: "invalid name", image: "Bad/Name", policy: v1.PullAlways, wantReason: "InvalidImageName",
			wantMsg:    `Failed to apply default image tag "Bad/Name": couldn't parse image name "Bad/Name": invalid reference format: repository name (Name) must be lowercase`,
			wantEvents: "Warning InspectFailed"},
		{name: "inspect fails", image: "reg/app:1", policy: v1.PullIfNotPresent, inspectErr: errors.New("runtime down"),
			wantReason: "ImageInspectError", wantMsg: `Failed to inspect image "": runtime down`, wantEvents: "Warning InspectFailed"},
		{name: "inspect fails under Never", image: "reg/app:1", policy: v1.PullNever, inspectErr: errors.New("runtime down"),
			wantReason: "ImageInspectError", wantMsg: `Failed to inspect image "": runtime down`, wantEvents: "Warning InspectFailed"},
		{name: "Always does not inspect", image: "reg/app:1", policy: v1.PullAlways, inspectErr: errors.New("runtime down"),
			wantPulls: "reg/app:1 ", wantRef: "sha256:pulled", wantEvents: "Normal Pulling, Normal Pulled"},
		{name: "pull fails", image: "reg/app:1", policy: v1.PullIfNotPresent, pullErr: errors.New("no such image"),
			wantPulls: "reg/app:1 ", wantReason: "ErrImagePull", wantMsg: "no such image", wantEvents: "Normal Pulling, Warning Failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := &fakeRuntime{present: map[string]string{}, inspectErr: tc.inspectErr, pullErr: tc.pullErr}
			if tc.present {
				rt.present[tc.image] = "sha256:here"
			}
			p, _, events := newTestPuller(rt)
			pod, c := testPod(tc.image, tc.policy)
			ref, wt, err := p.EnsureImage(context.Background(), pod, c)
			if ref != tc.wantRef || wt.Reason != tc.wantReason || wt.Message != tc.wantMsg || (err != nil) != (tc.wantReason != "") {
				t.Errorf("got %q %+v %v; want %q %q %q", ref, wt, err, tc.wantRef, tc.wantReason, tc.wantMsg)
			}
			if got := strings.Join(rt.pulls, ","); got != tc.wantPulls {
				t.Errorf("pulls %q, want %q", got, tc.wantPulls)
			}
			if got := reasons(*events); got != tc.wantEvents {
				t.Errorf("events %q, want %q (%q)", got, tc.wantEvents, *events)
			}
		})
	}
}

// Upstream's messages on the events that carry the image.
func TestEnsureImageEventMessages(t *testing.T) {
	rt := &fakeRuntime{present: map[string]string{"reg/app:1": "sha256:here"}}
	p, _, events := newTestPuller(rt)
	pod, c := testPod("reg/app:1", v1.PullIfNotPresent)
	p.EnsureImage(context.Background(), pod, c)
	c.ImagePullPolicy = v1.PullAlways
	p.EnsureImage(context.Background(), pod, c)
	want := []string{
		`Normal Pulled Container image "reg/app:1" already present on machine`,
		`Normal Pulling Pulling image "reg/app:1"`,
		`Normal Pulled Successfully pulled image "reg/app:1" in `,
	}
	if len(*events) != len(want) {
		t.Fatalf("events %q", *events)
	}
	for i, e := range *events {
		if !strings.HasPrefix(e, want[i]) {
			t.Errorf("event %q, want %q...", e, want[i])
		}
	}
	if e := (*events)[2]; !strings.Contains(e, " including waiting). Image size: 1234 bytes.") {
		t.Errorf("event %q: no size", e)
	}
}

// A runtime's pull error led by cri-api's RegistryUnavailable or SignatureValidationFailed
// is its own waiting reason with upstream's message (evalCRIPullErr), and leads the
// back-off's message; behind a gRPC code other than Unknown it is a plain ErrImagePull.
func TestEnsureImagePullErrorReasons(t *testing.T) {
	for _, tc := range []struct {
		pullErr             error
		wantReason, wantMsg string
	}{
		{errors.New("RegistryUnavailable: dial tcp 10.0.0.1:5000: connect: connection refused"), "RegistryUnavailable",
			"image pull failed for reg/app:1 because the registry is unavailable: dial tcp 10.0.0.1:5000: connect: connection refused"},
		{errors.New("RegistryUnavailable"), "RegistryUnavailable", "image pull failed for reg/app:1 because the registry is unavailable"},
		{errors.New("SignatureValidationFailed: no trusted signature"), "SignatureValidationFailed",
			"image pull failed for reg/app:1 because the signature validation failed: no trusted signature"},
		{grpcstatus.Error(codes.Unavailable, "RegistryUnavailable: down"), "ErrImagePull",
			"rpc error: code = Unavailable desc = RegistryUnavailable: down"},
		{errors.New("failed to resolve reference: RegistryUnavailable"), "ErrImagePull", "failed to resolve reference: RegistryUnavailable"},
	} {
		t.Run(tc.pullErr.Error(), func(t *testing.T) {
			ctx := context.Background()
			p, _, events := newTestPuller(&fakeRuntime{pullErr: tc.pullErr})
			pod, c := testPod("reg/app:1", v1.PullAlways)
			_, wt, err := p.EnsureImage(ctx, pod, c)
			if wt.Reason != tc.wantReason || wt.Message != tc.wantMsg || err != tc.pullErr {
				t.Errorf("got %+v %v, want %q %q", wt, err, tc.wantReason, tc.wantMsg)
			}
			wantEvents := []string{`Normal Pulling Pulling image "reg/app:1"`, `Warning Failed Failed to pull image "reg/app:1": ` + tc.pullErr.Error()}
			if strings.Join(*events, "\n") != strings.Join(wantEvents, "\n") {
				t.Errorf("events %q, want %q", *events, wantEvents)
			}
			_, wt, _ = p.EnsureImage(ctx, pod, c)
			if want := `Back-off pulling image "reg/app:1": ` + tc.wantReason + ": " + tc.wantMsg; wt.Reason != "ImagePullBackOff" || wt.Message != want {
				t.Errorf("in back-off: %+v, want message %q", wt, want)
			}
		})
	}
}

// A failed pull backs off (10s, then doubling): meanwhile ImagePullBackOff with the last
// error and a BackOff event, no pull; after it, a pull again, and success resets it.
func TestEnsureImageBackOff(t *testing.T) {
	ctx := context.Background()
	rt := &fakeRuntime{pullErr: errors.New("registry down")}
	p, clock, events := newTestPuller(rt)
	pod, c := testPod("reg/app:1", v1.PullAlways)
	if _, wt, _ := p.EnsureImage(ctx, pod, c); wt.Reason != "ErrImagePull" {
		t.Fatalf("first pull: %+v", wt)
	}
	if d := p.RetryIn(pod, c.Image); d != 10*time.Second {
		t.Errorf("retry in %v, want 10s", d)
	}
	*events = nil
	_, wt, err := p.EnsureImage(ctx, pod, c)
	if wt.Reason != "ImagePullBackOff" || wt.Message != `Back-off pulling image "reg/app:1": ErrImagePull: registry down` || err == nil {
		t.Errorf("in back-off: %+v %v", wt, err)
	}
	if strings.Join(*events, ",") != `Normal BackOff Back-off pulling image "reg/app:1"` || len(rt.pulls) != 1 {
		t.Errorf("in back-off: events %q, pulls %q", *events, rt.pulls)
	}
	clock.Step(11 * time.Second)
	if _, wt, _ := p.EnsureImage(ctx, pod, c); wt.Reason != "ErrImagePull" || len(rt.pulls) != 2 {
		t.Fatalf("after the back-off: %+v, pulls %q", wt, rt.pulls)
	}
	if d := p.RetryIn(pod, c.Image); d != 20*time.Second {
		t.Errorf("retry in %v after the second failure, want 20s", d)
	}
	clock.Step(21 * time.Second)
	rt.pullErr = nil
	if ref, wt, err := p.EnsureImage(ctx, pod, c); ref == "" || err != nil {
		t.Fatalf("third pull: %q %+v %v", ref, wt, err)
	}
	if d := p.RetryIn(pod, c.Image); d != 0 {
		t.Errorf("retry in %v after a success, want 0", d)
	}
}

// The pod's pull secrets for the image's registry are tried in turn, then anonymously.
func TestEnsureImagePullSecrets(t *testing.T) {
	dockercfg := func(name, server, user, pass string, inAuth bool) *v1.Secret {
		a := fmt.Sprintf(`{"username":%q,"password":%q}`, user, pass)
		if inAuth {
			a = fmt.Sprintf(`{"auth":%q}`, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
		}
		return &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Type: v1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{v1.DockerConfigJsonKey: []byte(`{"auths":{"` + server + `":` + a + `}}`)}}
	}
	for _, tc := range []struct {
		image, want string
	}{
		{"reg.example:5000/app:1", "reg.example:5000/app:1 alice,reg.example:5000/app:1 "},
		{"busybox:1.35", "busybox:1.35 bob,busybox:1.35 "},
		{"other.example/app:1", "other.example/app:1 "},
	} {
		rt := &fakeRuntime{pullErr: errors.New("denied")}
		p, _, _ := newTestPuller(rt,
			dockercfg("reg", "https://reg.example:5000/v2/", "alice", "a", true),
			dockercfg("hub", "https://index.docker.io/v1/", "bob", "b", false))
		pod, c := testPod(tc.image, v1.PullAlways)
		pod.Spec.ImagePullSecrets = []v1.LocalObjectReference{{Name: "reg"}, {Name: "hub"}, {Name: "missing"}}
		p.EnsureImage(context.Background(), pod, c)
		if got := strings.Join(rt.pulls, ","); got != tc.want {
			t.Errorf("%s: pulls %q, want %q", tc.image, got, tc.want)
		}
	}
}

// Concurrent pulls share one runtime pull only for the same image with the same
// credentials.
func TestSharedPullKey(t *testing.T) {
	alice := []*runtimeapi.AuthConfig{{Username: "alice", Password: "a"}}
	bob := []*runtimeapi.AuthConfig{{Username: "bob", Password: "b"}}
	k := sharedPullKey("reg/app:1", alice)
	if k != sharedPullKey("reg/app:1", []*runtimeapi.AuthConfig{{Username: "alice", Password: "a"}}) {
		t.Error("same image and credentials: different keys")
	}
	for name, other := range map[string]string{
		"other credentials": sharedPullKey("reg/app:1", bob),
		"no credentials":    sharedPullKey("reg/app:1", nil),
		"other image":       sharedPullKey("reg/app:2", alice),
	} {
		if other == k {
			t.Errorf("%s: same key", name)
		}
	}
}

func TestWithDefaultTag(t *testing.T) {
	digest := "sha256:" + strings.Repeat("a", 64)
	for in, want := range map[string]string{
		"busybox":                     "busybox:latest",
		"busybox:1.35":                "busybox:1.35",
		"library/busybox":             "library/busybox:latest",
		"localhost:5000/app":          "localhost:5000/app:latest",
		"localhost:5000/app:v1":       "localhost:5000/app:v1",
		"registry.k8s.io/pause:3.10":  "registry.k8s.io/pause:3.10",
		"busybox@" + digest:           "busybox@" + digest,
		"Bad/Name":                    "",
		"busybox:":                    "",
		"":                            "",
		" busybox":                    "",
		"busybox@sha256:short":        "",
		"example.com/a/b/c:tag-1.2_x": "example.com/a/b/c:tag-1.2_x",
	} {
		got, err := withDefaultTag(in)
		if want == "" {
			if err == nil || !strings.Contains(err.Error(), "invalid reference format") {
				t.Errorf("%q: got %q, %v; want an invalid reference error", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
}
