package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// containerLogs serves /containerLogs/{namespace}/{pod}/{container} with the query of a
// v1 PodLogOptions (follow, previous, tailLines, sinceSeconds, sinceTime, timestamps,
// limitBytes, stream), answering errors with upstream's codes and messages.
func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ns, name, cname := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	o, previous, herr := parseLogOptions(r.URL.Query(), time.Now())
	if herr != nil {
		httpError(w, herr.msg, herr.code)
		return
	}
	pod := s.podByName(ns, name)
	if pod == nil {
		httpError(w, fmt.Sprintf("pod %q does not exist", name), http.StatusNotFound)
		return
	}
	if !hasContainer(pod, cname) {
		httpError(w, fmt.Sprintf("container %q not found in pod %q", cname, name), http.StatusNotFound)
		return
	}
	st, err := s.cfg.Runtime.PodState(ctx, s.cfg.NodeName, pod.UID)
	if err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	c, err := logContainer(pod, st, cname, previous)
	if err != nil {
		httpError(w, err.Error(), http.StatusBadRequest)
		return
	}
	path := c.LogPath
	if path == "" {
		path = filepath.Join(cri.PodLogDir(s.cfg.Kubelet.PodLogsDir, pod), cname, strconv.Itoa(c.RestartCount)+".log")
	}
	f, err := os.Open(path)
	if err != nil {
		httpError(w, fmt.Sprintf("failed to open log of container %q in pod %q: %v", cname, name, err), http.StatusBadRequest)
		return
	}
	if c.State != cri.StateRunning {
		o.follow = false // nothing more will come
	}
	var src io.Reader = f
	if o.follow {
		rf := &rotatingFile{path: path, f: f}
		defer rf.Close()
		src = rf
	} else {
		defer f.Close()
	}
	running := func(ctx context.Context) bool {
		st, err := s.cfg.Runtime.ContainerStatus(ctx, c.ID)
		return err == nil && st.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := readLog(ctx, src, o, &flushWriter{w: w, rc: http.NewResponseController(w)}, running); err != nil && ctx.Err() == nil {
		klog.FromContext(ctx).Error(err, "Reading container log failed", "pod", klog.KObj(pod), "container", cname)
	}
}

// logContainer picks the container instance whose log to show, as upstream does from the
// container's status: with previous, the instance before the newest; else the newest if
// it ran, or the one before while the newest has not started.
func logContainer(pod *v1.Pod, st *cri.PodState, name string, previous bool) (*cri.Container, error) {
	latest, prev := st.Latest(name)
	if previous {
		if latest == nil || prev == nil {
			return nil, fmt.Errorf("previous terminated container %q in pod %q not found", name, pod.Name)
		}
		return prev, nil
	}
	switch {
	case latest != nil && (latest.State == cri.StateRunning || latest.State == cri.StateExited):
		return latest, nil
	case prev != nil:
		return prev, nil
	}
	for _, cs := range allStatuses(pod) {
		if cs.Name != name || cs.State.Waiting == nil {
			continue
		}
		switch reason := cs.State.Waiting.Reason; reason {
		case "ErrImagePull":
			return nil, fmt.Errorf("container %q in pod %q is waiting to start: image can't be pulled", name, pod.Name)
		case "ImagePullBackOff":
			return nil, fmt.Errorf("container %q in pod %q is waiting to start: trying and failing to pull image", name, pod.Name)
		case "":
		default:
			return nil, fmt.Errorf("container %q in pod %q is waiting to start: %s", name, pod.Name, reason)
		}
	}
	return nil, fmt.Errorf("container %q in pod %q is waiting to start - no logs yet", name, pod.Name)
}

func allStatuses(pod *v1.Pod) []v1.ContainerStatus {
	s := pod.Status
	out := append([]v1.ContainerStatus{}, s.InitContainerStatuses...)
	out = append(out, s.ContainerStatuses...)
	return append(out, s.EphemeralContainerStatuses...)
}

func hasContainer(pod *v1.Pod, name string) bool {
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

type queryError struct {
	code int
	msg  string
}

// parseLogOptions reads a v1 PodLogOptions query and validates it as upstream does
// (400 for what cannot be decoded, 422 for invalid values). now anchors sinceSeconds.
func parseLogOptions(q url.Values, now time.Time) (o logOptions, previous bool, herr *queryError) {
	bad := &queryError{http.StatusBadRequest, `{"message": "Unable to decode query."}`}
	invalid := &queryError{http.StatusUnprocessableEntity, `{"message": "Invalid request."}`}
	// Backwards compatibility: "tail" is tailLines, "all" meaning no limit.
	if tail := q.Get("tail"); tail != "" {
		q.Del("tailLines")
		if tail != "all" {
			q.Set("tailLines", tail)
		}
	}
	decodeErr := false
	boolean := func(key string) bool {
		v := q.Get(key)
		if v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		decodeErr = decodeErr || err != nil
		return b
	}
	integer := func(key string) *int64 {
		v := q.Get(key)
		if v == "" {
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		decodeErr = decodeErr || err != nil
		return &n
	}
	o.tail = -1
	o.follow, previous, o.timestamps = boolean("follow"), boolean("previous"), boolean("timestamps")
	tail, limit, sinceSecs := integer("tailLines"), integer("limitBytes"), integer("sinceSeconds")
	if decodeErr {
		return o, false, bad
	}
	var sinceTime *time.Time
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return o, false, bad
		}
		sinceTime = &t
	}
	switch {
	case tail != nil && *tail < 0, limit != nil && *limit < 1, sinceSecs != nil && *sinceSecs < 1,
		sinceSecs != nil && sinceTime != nil:
		return o, false, invalid
	}
	switch q.Get("stream") {
	case "", "All":
	case "Stdout":
		o.stream = "stdout"
	case "Stderr":
		o.stream = "stderr"
	default:
		return o, false, invalid
	}
	if tail != nil {
		if o.stream != "" {
			return o, false, invalid // upstream: tailLines only with all streams
		}
		o.tail = *tail
	}
	if limit != nil {
		o.limit = *limit
	}
	if sinceSecs != nil {
		o.since = now.Add(-time.Duration(*sinceSecs) * time.Second)
	}
	if sinceTime != nil {
		o.since = *sinceTime
	}
	return o, previous, nil
}

// flushWriter sends every write to the client at once (logs are streamed).
type flushWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.rc.Flush()
	}
	return n, err
}

// rotatingFile reads a followed log across rotations: at the end of the file, if the path
// now names another file (the log was rotated and the runtime reopened it), reading goes
// on from the start of the new file. The old one was complete: the runtime writes only to
// the new file once it reopened.
type rotatingFile struct {
	path string
	f    *os.File
}

func (r *rotatingFile) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if n > 0 || !errors.Is(err, io.EOF) {
		return n, err
	}
	cur, err1 := r.f.Stat()
	now, err2 := os.Stat(r.path)
	if err1 != nil || err2 != nil || os.SameFile(cur, now) {
		return 0, io.EOF
	}
	next, err := os.Open(r.path)
	if err != nil {
		return 0, io.EOF
	}
	// Whatever the runtime wrote to the old file before reopening is read first.
	if n, err := r.f.Read(p); n > 0 {
		_ = next.Close()
		return n, err
	}
	_ = r.f.Close()
	r.f = next
	return r.f.Read(p)
}

func (r *rotatingFile) Close() error { return r.f.Close() }
