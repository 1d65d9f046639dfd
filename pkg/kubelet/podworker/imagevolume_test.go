package podworker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
)

// imageVolumePod has an image volume "img" mounted by container "main" only; "other"
// mounts nothing.
func imageVolumePod(ref string, policy v1.PullPolicy) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1", Annotations: map[string]string{"a": "b"}}, Spec: v1.PodSpec{
		NodeName: "n", RestartPolicy: v1.RestartPolicyAlways,
		Volumes: []v1.Volume{{Name: "img", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: ref, PullPolicy: policy}}}},
		Containers: []v1.Container{
			{Name: "main", Image: "busybox:1.35", ImagePullPolicy: v1.PullIfNotPresent,
				VolumeMounts: []v1.VolumeMount{{Name: "img", MountPath: "/img"}, {Name: "img", MountPath: "/tools", SubPath: "bin"}}},
			{Name: "other", Image: "busybox:1.35", ImagePullPolicy: v1.PullIfNotPresent},
		},
	}}
}

// A container mounting an image volume whose pull fails waits with upstream's reason and
// a Failed "Error: <reason>" event (the pull's own events are the pod's); the container
// that does not mount it starts.
func TestSyncImageVolumePullFailure(t *testing.T) {
	for _, tc := range []struct {
		name, ref  string
		policy     v1.PullPolicy
		pullErr    error
		wantReason string
		wantMsg    string
		wantEvents []string
	}{
		{name: "bad reference", ref: "reg/bad ref", policy: v1.PullIfNotPresent, wantReason: "InvalidImageName",
			wantMsg:    `Failed to apply default image tag "reg/bad ref": couldn't parse image name "reg/bad ref": invalid reference format`,
			wantEvents: []string{`Warning InspectFailed Failed to apply default image tag "reg/bad ref"`, "Warning Failed Error: InvalidImageName"}},
		{name: "absent under Never", ref: "reg/data:1", policy: v1.PullNever, wantReason: "ErrImageNeverPull",
			wantMsg:    `Container image "reg/data:1" is not present with pull policy of Never`,
			wantEvents: []string{`Warning ErrImageNeverPull Container image "reg/data:1" is not present`, "Warning Failed Error: ErrImageNeverPull"}},
		{name: "pull fails", ref: "reg/data:1", policy: v1.PullIfNotPresent, pullErr: errors.New("not found"),
			wantReason: "ErrImagePull", wantMsg: "not found",
			wantEvents: []string{`Normal Pulling Pulling image "reg/data:1"`, `Warning Failed Failed to pull image "reg/data:1"`, "Warning Failed Error: ErrImagePull"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := imageVolumePod(tc.ref, tc.policy)
			w, rt, st := newSyncFixture(t, pod, nil)
			if tc.pullErr != nil {
				fixtureImages.InjectError("PullImage", tc.pullErr)
			}
			wk := &worker{uid: pod.UID, wake: make(chan struct{}, 1), pod: pod, waiting: map[string]status.Waiting{}}
			w.sync(context.Background(), wk)
			if got := mutations(rt.GetCalls()); strings.Join(got, ",") != "RunPodSandbox,CreateContainer,StartContainer" {
				t.Errorf("calls %v, want the sandbox and container other only", got)
			}
			ps, _ := st.Status(pod.UID)
			var main *v1.ContainerStatus
			for i := range ps.ContainerStatuses {
				if ps.ContainerStatuses[i].Name == "main" {
					main = &ps.ContainerStatuses[i]
				}
			}
			if main == nil || main.State.Waiting == nil || main.State.Waiting.Reason != tc.wantReason || main.State.Waiting.Message != tc.wantMsg {
				t.Fatalf("main = %+v, want waiting %q %q", main, tc.wantReason, tc.wantMsg)
			}
			events := drain(w.cfg.Recorder.(*record.FakeRecorder))
			for _, want := range tc.wantEvents {
				if !slices.ContainsFunc(events, func(e string) bool { return strings.HasPrefix(e, want) }) {
					t.Errorf("no event %q in %q", want, events)
				}
			}
			// Two mounts of the failed volume: two Failed events, as upstream.
			if n := len(slices.DeleteFunc(events, func(e string) bool { return e != "Warning Failed Error: "+tc.wantReason })); n != 2 {
				t.Errorf("%d Failed events for main, want 2", n)
			}
		})
	}
}

// The CRI mounts of an image volume: the pulled image, no host path, read-only even when
// the volumeMount does not say so, a subPath as ImageSubPath; a subPath escaping is refused.
func TestImageVolumeMounts(t *testing.T) {
	ctx := context.Background()
	pod := imageVolumePod("busybox:1.35", v1.PullIfNotPresent)
	w, _, _ := newSyncFixture(t, pod, nil)
	p := &pass{pod: pod, acts: actions{Start: []start{{Container: &pod.Spec.Containers[0]}}}}
	pulls := w.pullImageVolumes(ctx, p)
	if r := pulls["img"]; r.err != nil || r.spec == nil {
		t.Fatalf("pull: %+v", r)
	}
	mounts, err := w.volumeMounts(ctx, pod, &pod.Spec.Containers[0], nil, pulls)
	if err != nil {
		t.Fatal(err)
	}
	spec := &runtimeapi.ImageSpec{Image: pulls["img"].spec.Image, UserSpecifiedImage: "busybox:1.35", Annotations: map[string]string{"a": "b"}}
	want := []*runtimeapi.Mount{
		{ContainerPath: "/img", Image: spec, Readonly: true},
		{ContainerPath: "/tools", Image: spec, ImageSubPath: "bin", Readonly: true},
	}
	if spec.Image == "" || len(mounts) != 2 || !proto.Equal(mounts[0], want[0]) || !proto.Equal(mounts[1], want[1]) {
		t.Errorf("mounts %v, want %v", mounts, want)
	}
	c := pod.Spec.Containers[0].DeepCopy()
	c.VolumeMounts = []v1.VolumeMount{{Name: "img", MountPath: "/x", SubPath: "../etc"}}
	if _, err := w.volumeMounts(ctx, pod, c, nil, pulls); err == nil {
		t.Error("a subPath with '..' was accepted")
	}
	if got := w.pullImageVolumes(ctx, &pass{pod: pod}); got != nil {
		t.Errorf("pulled with nothing to start: %v", got)
	}
}
