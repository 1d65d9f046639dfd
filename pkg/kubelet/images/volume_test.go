package images

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// An empty pullPolicy gets the API server's default for image volumes.
func TestVolumePullPolicy(t *testing.T) {
	for _, tc := range []struct {
		ref    string
		policy v1.PullPolicy
		want   v1.PullPolicy
	}{
		{ref: "busybox", want: v1.PullAlways},
		{ref: "reg:5000/app:latest", want: v1.PullAlways},
		{ref: "reg:5000/app:1.0", want: v1.PullIfNotPresent},
		{ref: "app@sha256:" + strings.Repeat("a", 64), want: v1.PullIfNotPresent},
		{ref: "reg/bad ref", want: v1.PullIfNotPresent},
		{ref: "busybox", policy: v1.PullNever, want: v1.PullNever},
		{ref: "app:1", policy: v1.PullAlways, want: v1.PullAlways},
	} {
		if got := VolumePullPolicy(&v1.ImageVolumeSource{Reference: tc.ref, PullPolicy: tc.policy}); got != tc.want {
			t.Errorf("%q %q: got %q, want %q", tc.ref, tc.policy, got, tc.want)
		}
	}
}

// An image volume's pull: the container rules and reasons, with events on the pod.
func TestEnsureVolumeImage(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ref        string
		policy     v1.PullPolicy
		present    bool
		pullErr    error
		wantRef    string
		wantReason string
		wantMsg    string
		wantEvents string
	}{
		{name: "IfNotPresent, present", ref: "reg/data:1", policy: v1.PullIfNotPresent, present: true,
			wantRef: "sha256:here", wantEvents: `Normal Pulled Container image "reg/data:1" already present on machine and can be accessed by the pod`},
		{name: "default policy of a tag: IfNotPresent", ref: "reg/data:1", present: true,
			wantRef: "sha256:here", wantEvents: `Normal Pulled Container image "reg/data:1" already present on machine and can be accessed by the pod`},
		{name: "no tag: Always, pulled with :latest", ref: "reg/data", present: true,
			wantRef: "sha256:pulled", wantEvents: `Normal Pulling Pulling image "reg/data:latest"|Normal Pulled Successfully pulled`},
		{name: "Never, absent", ref: "reg/data:1", policy: v1.PullNever, wantReason: "ErrImageNeverPull",
			wantMsg:    `Container image "reg/data:1" is not present with pull policy of Never`,
			wantEvents: `Warning ErrImageNeverPull Container image "reg/data:1" is not present with pull policy of Never`},
		{name: "IfNotPresent, pull fails", ref: "reg/data:1", policy: v1.PullIfNotPresent, pullErr: errors.New("not found"),
			wantReason: "ErrImagePull", wantMsg: "not found",
			wantEvents: `Normal Pulling Pulling image "reg/data:1"|Warning Failed Failed to pull image "reg/data:1": not found`},
		{name: "invalid reference", ref: "reg/bad ref", policy: v1.PullIfNotPresent, wantReason: "InvalidImageName",
			wantMsg:    `Failed to apply default image tag "reg/bad ref": couldn't parse image name "reg/bad ref": invalid reference format`,
			wantEvents: `Warning InspectFailed Failed to apply default image tag "reg/bad ref"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt := &fakeRuntime{pullErr: tc.pullErr}
			if tc.present {
				rt.present = map[string]string{tc.ref: "sha256:here"}
			}
			p, _, _ := newTestPuller(rt)
			var events []string
			p.cfg.Event = func(_ *v1.Pod, c *v1.Container, typ, reason, format string, args ...any) {
				if c != nil {
					t.Errorf("event %s on container %s, want the pod", reason, c.Name)
				}
				events = append(events, typ+" "+reason+" "+fmt.Sprintf(format, args...))
			}
			pod, _ := testPod("app:1", v1.PullIfNotPresent)
			ref, wt, err := p.EnsureVolumeImage(context.Background(), pod, &v1.ImageVolumeSource{Reference: tc.ref, PullPolicy: tc.policy})
			if ref != tc.wantRef || wt.Reason != tc.wantReason || wt.Message != tc.wantMsg || (err != nil) != (tc.wantReason != "") {
				t.Errorf("got %q %+v %v, want %q %q %q", ref, wt, err, tc.wantRef, tc.wantReason, tc.wantMsg)
			}
			want := strings.Split(tc.wantEvents, "|")
			if len(events) != len(want) {
				t.Fatalf("events %q, want %q", events, want)
			}
			for i := range want {
				if !strings.HasPrefix(events[i], want[i]) {
					t.Errorf("event %q, want %q...", events[i], want[i])
				}
			}
		})
	}
}

// A volume's failed pull backs off like a container's, on the same key for the same
// image: the next try is ImagePullBackOff with the previous error, and RetryIn says when.
func TestEnsureVolumeImageBackOff(t *testing.T) {
	ctx := context.Background()
	rt := &fakeRuntime{pullErr: errors.New("not found")}
	p, clock, _ := newTestPuller(rt)
	pod, c := testPod("reg/data:1", v1.PullAlways)
	src := &v1.ImageVolumeSource{Reference: "reg/data:1", PullPolicy: v1.PullIfNotPresent}
	if _, wt, _ := p.EnsureVolumeImage(ctx, pod, src); wt.Reason != "ErrImagePull" {
		t.Fatalf("first pull: %+v", wt)
	}
	if d := p.RetryIn(pod, src.Reference); d != 10*time.Second {
		t.Errorf("retry in %v, want 10s", d)
	}
	_, wt, _ := p.EnsureVolumeImage(ctx, pod, src)
	if wt.Reason != "ImagePullBackOff" || wt.Message != `Back-off pulling image "reg/data:1": ErrImagePull: not found` {
		t.Errorf("in back-off: %+v", wt)
	}
	if _, wt, _ := p.EnsureImage(ctx, pod, c); wt.Reason != "ImagePullBackOff" || len(rt.pulls) != 1 {
		t.Errorf("container of the same image: %+v, pulls %q", wt, rt.pulls)
	}
	clock.Step(11 * time.Second)
	rt.pullErr = nil
	if ref, wt, err := p.EnsureVolumeImage(ctx, pod, src); ref != "sha256:pulled" || err != nil {
		t.Errorf("after the back-off: %q %+v %v", ref, wt, err)
	}
}
