package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs/pkg/errgrpc"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// nodeRoutes adds the node's debugging endpoints as upstream's kubelet serves them:
// /logs/ (enableSystemLogHandler, with the query form when enableSystemLogQuery),
// /runningpods/, POST /run/... and POST /checkpoint/... (feature gate ContainerCheckpoint,
// on by default). Other methods get 405 from the mux, as from upstream's route table.
func (s *Server) nodeRoutes(mux *http.ServeMux) {
	k := s.cfg.Kubelet
	if h := k.EnableSystemLogHandler; h == nil || *h {
		q := k.EnableSystemLogQuery != nil && *k.EnableSystemLogQuery
		logs := newNodeLogs(s.cfg.NodeLogDir, q)
		mux.Handle("GET /logs/", logs)
	} else {
		mux.HandleFunc("/logs/", func(w http.ResponseWriter, _ *http.Request) {
			httpError(w, "logs endpoint is disabled.", http.StatusMethodNotAllowed)
		})
	}
	mux.HandleFunc("GET /runningpods/{$}", s.runningPods)
	mux.HandleFunc("GET /runningpods", s.runningPods)
	mux.HandleFunc("POST /run/{namespace}/{pod}/{container}", s.run)
	mux.HandleFunc("POST /run/{namespace}/{pod}/{uid}/{container}", s.run)
	if on, set := k.FeatureGates["ContainerCheckpoint"]; on || !set {
		mux.HandleFunc("POST /checkpoint/{namespace}/{pod}/{container}", s.checkpoint)
	}
}

// runningPods serves the pods the runtime runs (ready sandboxes and running containers,
// from their labels) as a v1 PodList of name, namespace, UID and containers' names and
// images: upstream's /runningpods/.
func (s *Server) runningPods(w http.ResponseWriter, r *http.Request) {
	ready := &runtimeapi.PodSandboxFilter{
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
		LabelSelector: map[string]string{cri.LabelNode: s.cfg.NodeName}}
	sandboxes, err := s.cfg.Runtime.ListSandboxes(r.Context(), ready)
	if err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	running := &runtimeapi.ContainerFilter{
		State:         &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
		LabelSelector: map[string]string{cri.LabelNode: s.cfg.NodeName}}
	containers, err := s.cfg.Runtime.ListContainers(r.Context(), running)
	if err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, runningPodList(sandboxes, containers))
}

// runningPodList groups sandboxes and containers into pods by the pod UID label, in the
// order the pods were first seen.
func runningPodList(sandboxes []*runtimeapi.PodSandbox, containers []*runtimeapi.Container) v1.PodList {
	list := v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: []v1.Pod{}}
	index := map[types.UID]int{}
	pod := func(labels map[string]string) *v1.Pod {
		uid := types.UID(labels[cri.LabelPodUID])
		i, ok := index[uid]
		if !ok {
			i = len(list.Items)
			index[uid] = i
			list.Items = append(list.Items, v1.Pod{ObjectMeta: metav1.ObjectMeta{
				UID: uid, Name: labels[cri.LabelPodName], Namespace: labels[cri.LabelPodNamespace]}})
		}
		return &list.Items[i]
	}
	for _, sb := range sandboxes {
		pod(sb.GetLabels())
	}
	for _, c := range containers {
		p := pod(c.GetLabels())
		p.Spec.Containers = append(p.Spec.Containers, v1.Container{
			Name: c.GetLabels()[cri.LabelContainer], Image: c.GetImage().GetImage()})
	}
	return list
}

// run serves POST /run/{namespace}/{pod}[/{uid}]/{container}?cmd=...: the command (split
// at spaces, as upstream) runs to its end in the container and its output (stdout, then
// stderr) is the answer.
func (s *Server) run(w http.ResponseWriter, r *http.Request) {
	pod := s.podByName(r.PathValue("namespace"), r.PathValue("pod"))
	if pod == nil {
		httpError(w, "pod does not exist", http.StatusNotFound)
		return
	}
	name := r.PathValue("container")
	id, err := s.runningContainer(r, pod, types.UID(r.PathValue("uid")), name)
	if err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if id == "" {
		httpError(w, fmt.Sprintf("container not found (%q)", name), http.StatusInternalServerError)
		return
	}
	out, err := s.cfg.Runtime.RunInContainer(r.Context(), id, strings.Split(r.URL.Query().Get("cmd"), " "))
	if err != nil {
		httpError(w, criError(err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

// runningContainer returns the ID of the pod's running container name ("" if none); a
// uid other than the pod's finds none, as upstream's lookup by UID.
func (s *Server) runningContainer(r *http.Request, pod *v1.Pod, uid types.UID, name string) (string, error) {
	if uid != "" && uid != pod.UID {
		return "", nil
	}
	st, err := s.cfg.Runtime.PodState(r.Context(), s.cfg.NodeName, pod.UID)
	if err != nil {
		return "", err
	}
	if c, _ := st.Latest(name); c != nil && c.State == cri.StateRunning {
		return c.ID, nil
	}
	return "", nil
}

// checkpoint serves POST /checkpoint/{namespace}/{pod}/{container}?timeout=N: the runtime
// writes the container's checkpoint to <root-dir>/checkpoints, and the answer names the
// archive ({"items":["<path>"]}), with upstream's codes and messages.
func (s *Server) checkpoint(w http.ResponseWriter, r *http.Request) {
	ns, name, container := r.PathValue("namespace"), r.PathValue("pod"), r.PathValue("container")
	pod := s.podByName(ns, name)
	if pod == nil {
		httpError(w, "pod does not exist", http.StatusNotFound)
		return
	}
	if !hasContainer(pod, container) {
		httpError(w, fmt.Sprintf("container %v does not exist", container), http.StatusNotFound)
		return
	}
	var timeout int64
	if ts := r.URL.Query()["timeout"]; len(ts) > 0 {
		t, err := strconv.ParseInt(ts[len(ts)-1], 10, 64)
		if err != nil {
			httpError(w, "cannot parse value of timeout parameter", http.StatusNotFound)
			return
		}
		timeout = t
	}
	failed := func(msg string) {
		httpError(w, fmt.Sprintf("checkpointing of %v/%v/%v failed (%v)", ns, name, container, msg), http.StatusInternalServerError)
	}
	id, err := s.runningContainer(r, pod, "", container)
	if err != nil {
		failed(err.Error())
		return
	}
	if id == "" {
		failed(fmt.Sprintf("container %v not found", container))
		return
	}
	dir := filepath.Join(s.cfg.RootDir, "checkpoints")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		failed(err.Error())
		return
	}
	location := filepath.Join(dir, fmt.Sprintf("checkpoint-%s_%s-%s-%s.tar", name, ns, container, time.Now().Format(time.RFC3339)))
	if err := s.cfg.Runtime.CheckpointContainer(r.Context(), id, location, timeout); err != nil {
		failed(criError(err))
		return
	}
	b, _ := json.Marshal(map[string][]string{"items": {location}})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// criError is a runtime error's text as upstream's kubelet shows it: the gRPC status
// ("rpc error: code = ... desc = ..."), which pkg/cri has turned into an errdefs class.
// Errors the command itself made (a non-zero exit) stay as they are.
func criError(err error) string {
	var exit *cri.ExitError
	if errors.As(err, &exit) {
		return err.Error()
	}
	return errgrpc.ToGRPC(err).Error()
}
