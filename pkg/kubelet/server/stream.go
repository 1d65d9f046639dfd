package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/containerd/errdefs"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// exec serves /exec/{namespace}/{pod}[/{uid}]/{container}?command=...&stdin=1&...: the
// runtime prepares the session and the upgraded connection is proxied to its streaming
// server (upstream's non-redirecting mode).
func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	s.stream(w, r, func(id string, o cri.Streams) (string, error) {
		return s.cfg.Runtime.Exec(r.Context(), id, r.URL.Query()["command"], o)
	})
}

// attach serves /attach/{namespace}/{pod}[/{uid}]/{container}.
func (s *Server) attach(w http.ResponseWriter, r *http.Request) {
	s.stream(w, r, func(id string, o cri.Streams) (string, error) {
		return s.cfg.Runtime.Attach(r.Context(), id, o)
	})
}

// stream reads the stream options and the container of an exec or attach request, asks
// the runtime for a session (prepare returns its URL) and proxies the connection to it.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, prepare func(containerID string, o cri.Streams) (string, error)) {
	opts, err := streamOptions(r.URL.Query())
	if err != nil {
		httpError(w, err.Error(), http.StatusBadRequest)
		return
	}
	id, ok := s.streamContainer(w, r)
	if !ok {
		return
	}
	session, err := prepare(id, opts)
	if err != nil {
		writeStreamError(w, err)
		return
	}
	proxyStream(w, r, session)
}

// portForward serves /portForward/{namespace}/{pod}[/{uid}]. Ports come in the stream's
// headers (SPDY) or, for websockets, as port= query values.
func (s *Server) portForward(w http.ResponseWriter, r *http.Request) {
	var ports []int32
	for _, p := range r.URL.Query()["port"] {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			httpError(w, fmt.Sprintf("invalid port %q", p), http.StatusBadRequest)
			return
		}
		ports = append(ports, int32(n))
	}
	pod := s.streamPod(w, r)
	if pod == nil {
		return
	}
	st, err := s.cfg.Runtime.PodState(r.Context(), s.cfg.NodeName, pod.UID)
	if err != nil {
		writeStreamError(w, err)
		return
	}
	sb := st.ReadySandbox()
	if sb == nil {
		writeStreamError(w, fmt.Errorf("pod not found (%q)", pod.Name+"_"+pod.Namespace))
		return
	}
	session, err := s.cfg.Runtime.PortForward(r.Context(), sb.ID, ports)
	if err != nil {
		writeStreamError(w, err)
		return
	}
	proxyStream(w, r, session)
}

// streamPod finds the request's pod (and checks its UID when the path has one); it
// answers 404 itself when there is none.
func (s *Server) streamPod(w http.ResponseWriter, r *http.Request) *v1.Pod {
	pod := s.podByName(r.PathValue("namespace"), r.PathValue("pod"))
	if pod == nil {
		httpError(w, "pod does not exist", http.StatusNotFound)
		return nil
	}
	if uid := types.UID(r.PathValue("uid")); uid != "" && uid != pod.UID {
		httpError(w, "pod not found", http.StatusNotFound)
		return nil
	}
	return pod
}

// streamContainer finds the running container of the request; it answers itself when
// there is none.
func (s *Server) streamContainer(w http.ResponseWriter, r *http.Request) (string, bool) {
	pod := s.streamPod(w, r)
	if pod == nil {
		return "", false
	}
	name := r.PathValue("container")
	st, err := s.cfg.Runtime.PodState(r.Context(), s.cfg.NodeName, pod.UID)
	if err != nil {
		writeStreamError(w, err)
		return "", false
	}
	if c, _ := st.Latest(name); c != nil && c.State == cri.StateRunning {
		return c.ID, true
	}
	writeStreamError(w, fmt.Errorf("container not found (%q)", name))
	return "", false
}

// streamOptions reads the streams asked for under the names the API server uses towards
// kubelets (upstream's ExecStdinParam etc.): input, output, error and tty, each "1" (or
// "true"). A TTY has no separate stderr.
func streamOptions(q url.Values) (cri.Streams, error) {
	on := func(k string) bool { v := q.Get(k); return v == "1" || v == "true" }
	o := cri.Streams{Stdin: on("input"), Stdout: on("output"), Stderr: on("error"), TTY: on("tty")}
	if o.TTY {
		o.Stderr = false
	}
	if !o.Stdin && !o.Stdout && !o.Stderr {
		return o, errors.New("you must specify at least 1 of stdin, stdout, stderr")
	}
	return o, nil
}

// writeStreamError answers a failed stream set-up as upstream: 404 for what the runtime
// does not know, 429 when it is out of resources, else 500.
func writeStreamError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errdefs.IsNotFound(err):
		code = http.StatusNotFound
	case errdefs.IsResourceExhausted(err):
		code = http.StatusTooManyRequests
	}
	httpError(w, err.Error(), code)
}

// proxyStream hands the upgrade request to the runtime's streaming URL and copies both
// ways until either side closes.
func proxyStream(w http.ResponseWriter, r *http.Request, rawURL string) {
	u, err := url.Parse(rawURL)
	if err != nil {
		httpError(w, fmt.Sprintf("runtime streaming URL %q: %v", rawURL, err), http.StatusInternalServerError)
		return
	}
	h := proxy.NewUpgradeAwareHandler(u, nil /* default transport */, false, true /* upgrade required */, responder{})
	h.ServeHTTP(w, r)
}

type responder struct{}

func (responder) Error(w http.ResponseWriter, r *http.Request, err error) {
	klog.FromContext(r.Context()).Error(err, "Proxying a stream to the runtime failed", "path", r.URL.Path)
	httpError(w, err.Error(), http.StatusInternalServerError)
}
