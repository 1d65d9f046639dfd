package server

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

func TestParseLogOptions(t *testing.T) {
	now := t0.Add(time.Hour)
	for _, tc := range []struct {
		query    string
		want     logOptions
		previous bool
		code     int
	}{
		{"", logOptions{tail: -1}, false, 0},
		{"follow=true&previous=1&timestamps=true&tailLines=5&limitBytes=100", logOptions{tail: 5, limit: 100, timestamps: true, follow: true}, true, 0},
		{"tail=7", logOptions{tail: 7}, false, 0},
		{"tailLines=3&tail=all", logOptions{tail: -1}, false, 0},
		{"sinceSeconds=60", logOptions{tail: -1, since: now.Add(-time.Minute)}, false, 0},
		{"sinceTime=2026-01-02T03:04:05Z", logOptions{tail: -1, since: t0}, false, 0},
		{"stream=Stderr", logOptions{tail: -1, stream: "stderr"}, false, 0},
		{"stream=All&tailLines=1", logOptions{tail: 1}, false, 0},
		{"follow=maybe", logOptions{}, false, 400},
		{"tailLines=x", logOptions{}, false, 400},
		{"sinceTime=yesterday", logOptions{}, false, 400},
		{"tailLines=-1", logOptions{}, false, 422},
		{"limitBytes=0", logOptions{}, false, 422},
		{"sinceSeconds=0", logOptions{}, false, 422},
		{"sinceSeconds=5&sinceTime=2026-01-02T03:04:05Z", logOptions{}, false, 422},
		{"stream=Both", logOptions{}, false, 422},
		{"stream=Stdout&tailLines=2", logOptions{}, false, 422},
	} {
		q, _ := url.ParseQuery(tc.query)
		o, prev, herr := parseLogOptions(q, now)
		switch {
		case tc.code != 0 && (herr == nil || herr.code != tc.code):
			t.Errorf("%q: got %+v, want error %d", tc.query, herr, tc.code)
		case tc.code == 0 && herr != nil:
			t.Errorf("%q: unexpected error %+v", tc.query, herr)
		case tc.code == 0 && (o != tc.want || prev != tc.previous):
			t.Errorf("%q: got %+v previous=%v, want %+v previous=%v", tc.query, o, prev, tc.want, tc.previous)
		}
	}
}

func TestLogContainer(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	inst := func(id string, rc int, state cri.ContainerState) cri.Container {
		return cri.Container{ID: id, Name: "c", RestartCount: rc, State: state}
	}
	for _, tc := range []struct {
		name       string
		containers []cri.Container // newest first, as PodState has them
		previous   bool
		waiting    string
		wantID     string
		wantErr    string
	}{
		{"running", []cri.Container{inst("c1", 1, cri.StateRunning), inst("c0", 0, cri.StateExited)}, false, "", "c1", ""},
		{"previous", []cri.Container{inst("c1", 1, cri.StateRunning), inst("c0", 0, cri.StateExited)}, true, "", "c0", ""},
		{"exited", []cri.Container{inst("c0", 0, cri.StateExited)}, false, "", "c0", ""},
		{"no previous", []cri.Container{inst("c0", 0, cri.StateRunning)}, true, "", "", `previous terminated container "c" in pod "p" not found`},
		{"restarting: the last run", []cri.Container{inst("c1", 1, cri.StateCreated), inst("c0", 0, cri.StateExited)}, false, "", "c0", ""},
		{"never ran", nil, false, "", "", `container "c" in pod "p" is waiting to start - no logs yet`},
		{"waiting for its image", nil, false, "ImagePullBackOff", "", `container "c" in pod "p" is waiting to start: trying and failing to pull image`},
		{"waiting", nil, false, "ContainerCreating", "", `container "c" in pod "p" is waiting to start: ContainerCreating`},
	} {
		p := pod.DeepCopy()
		if tc.waiting != "" {
			p.Status.ContainerStatuses = []v1.ContainerStatus{{Name: "c", State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: tc.waiting}}}}
		}
		c, err := logContainer(p, &cri.PodState{Containers: tc.containers}, "c", tc.previous)
		switch {
		case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || c.ID != tc.wantID):
			t.Errorf("%s: got %+v %v, want %s", tc.name, c, err, tc.wantID)
		}
	}
}

// TestContainerLogsHandler serves logs from files where the runtime put them, and
// answers unknown pods and containers and a missing previous instance as upstream.
func TestContainerLogsHandler(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u1"},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app"}, {Name: "side"}}}}
	k := testKubeletConfig(t)
	dir := filepath.Join(cri.PodLogDir(k.PodLogsDir, pod), "app")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "0.log"), []byte(criLine(0, "stdout", "F", "first run")), 0o644)
	os.WriteFile(filepath.Join(dir, "1.log"), []byte(criLine(1, "stdout", "F", "a")+criLine(2, "stderr", "F", "b")), 0o644)
	rt := &fakeRuntime{state: map[types.UID]*cri.PodState{}}
	rt.state["u1"] = &cri.PodState{Containers: []cri.Container{
		// The current instance's path comes from the runtime; the older one's is derived.
		{ID: "c1", Name: "app", RestartCount: 1, State: cri.StateExited, LogPath: filepath.Join(dir, "1.log")},
		{ID: "c0", Name: "app", RestartCount: 0, State: cri.StateExited},
		{ID: "s0", Name: "side", RestartCount: 0, State: cri.StateRunning},
	}}
	rv := &reviews{tokens: map[string]authnv1.UserInfo{"t": {Username: "x"}}, allow: func(authzv1.SubjectAccessReviewSpec) bool { return true }}
	s := newTestServer(t, k, rv, rt, pod)
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/containerLogs/ns/web/app", 200, "a\nb\n"},
		{"/containerLogs/ns/web/app?tailLines=1&timestamps=true", 200, "2026-01-02T03:04:07Z b\n"},
		{"/containerLogs/ns/web/app?previous=true", 200, "first run\n"},
		{"/containerLogs/ns/web/app?follow=true", 200, "a\nb\n"}, // exited: follow ends at once
		{"/containerLogs/ns/web/side?previous=true", 400, `previous terminated container "side" in pod "web" not found`},
		{"/containerLogs/ns/nope/app", 404, `pod "nope" does not exist`},
		{"/containerLogs/other/web/app", 404, `pod "web" does not exist`},
		{"/containerLogs/ns/web/db", 404, `container "db" not found in pod "web"`},
		{"/containerLogs/ns/web/app?tailLines=-2", 422, `{"message": "Invalid request."}`},
	} {
		w := do(t, s.Handler(), "GET", tc.path, "t")
		if w.Code != tc.code || strings.TrimSuffix(w.Body.String(), "\n") != strings.TrimSuffix(tc.body, "\n") {
			t.Errorf("%s: %d %q, want %d %q", tc.path, w.Code, w.Body, tc.code, tc.body)
		}
	}
}

func TestStreamRequests(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u1"}, Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app"}}}}
	rt := &fakeRuntime{state: map[types.UID]*cri.PodState{"u1": {Containers: []cri.Container{{ID: "c0", Name: "app", State: cri.StateExited}}}}}
	rv := &reviews{tokens: map[string]authnv1.UserInfo{"t": {Username: "x"}}, allow: func(authzv1.SubjectAccessReviewSpec) bool { return true }}
	s := newTestServer(t, testKubeletConfig(t), rv, rt, pod)
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
	}{
		{"POST", "/exec/ns/web/app?command=ls", 400, "you must specify at least 1 of stdin, stdout, stderr"},
		{"POST", "/exec/ns/nope/app?command=ls&output=1", 404, "pod does not exist"},
		{"POST", "/exec/ns/web/other-uid/app?command=ls&output=1", 404, "pod not found"},
		{"POST", "/exec/ns/web/app?command=ls&output=1", 500, `container not found ("app")`},
		{"POST", "/attach/ns/web/app?output=true", 500, `container not found ("app")`},
		{"POST", "/portForward/ns/web?port=x", 400, `invalid port "x"`},
		{"POST", "/portForward/ns/web", 500, `pod not found ("web_ns")`},
		{"PUT", "/exec/ns/web/app", 405, ""},
	} {
		w := do(t, s.Handler(), tc.method, tc.path, "t")
		if w.Code != tc.code || (tc.body != "" && strings.TrimSpace(w.Body.String()) != tc.body) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, w.Code, w.Body, tc.code, tc.body)
		}
	}
}

// A session the runtime refuses is answered as upstream: 404 for what it does not know,
// 429 when it is out of resources, else 500, with the runtime's message.
func TestStreamRuntimeErrors(t *testing.T) {
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "u1"}, Spec: v1.PodSpec{Containers: []v1.Container{{Name: "app"}}}}
	rt := &fakeRuntime{state: map[types.UID]*cri.PodState{"u1": {
		Sandboxes:  []cri.Sandbox{{ID: "s1", Ready: true}},
		Containers: []cri.Container{{ID: "c1", Name: "app", State: cri.StateRunning}}}}}
	rv := &reviews{tokens: map[string]authnv1.UserInfo{"t": {Username: "x"}}, allow: func(authzv1.SubjectAccessReviewSpec) bool { return true }}
	s := newTestServer(t, testKubeletConfig(t), rv, rt, pod)
	for _, tc := range []struct {
		err  error
		code int
	}{
		{errdefs.ErrNotFound.WithMessage(`container "c1" not found`), 404},
		{errdefs.ErrResourceExhausted.WithMessage("too many sessions"), 429},
		{errors.New("boom"), 500},
	} {
		rt.streamErr = tc.err
		for _, path := range []string{"/exec/ns/web/app?command=ls&output=1", "/attach/ns/web/app?output=1", "/portForward/ns/web?port=80"} {
			w := do(t, s.Handler(), "POST", path, "t")
			if w.Code != tc.code || strings.TrimSpace(w.Body.String()) != tc.err.Error() {
				t.Errorf("%s with %v: %d %q, want %d", path, tc.err, w.Code, w.Body, tc.code)
			}
		}
	}
}

func TestStreamOptions(t *testing.T) {
	q, _ := url.ParseQuery("input=1&output=true&error=1&tty=1")
	o, err := streamOptions(q)
	if err != nil || o != (cri.Streams{Stdin: true, Stdout: true, TTY: true}) {
		t.Errorf("tty drops stderr: %+v %v", o, err)
	}
	for _, q := range []url.Values{{"tty": {"1"}}, {"stdout": {"1"}}} {
		if _, err := streamOptions(q); err == nil {
			t.Errorf("%v accepted: no stream under the API server's names", q)
		}
	}
}
