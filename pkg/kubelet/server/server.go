// Package server is the kubelet API (HTTPS, :10250 by default), as upstream's kubelet
// serves it: /healthz, /metrics, /metrics/probes, /pods, /configz, /stats/summary,
// /containerLogs, and the /exec, /attach and /portForward streams (proxied to the
// runtime's streaming server). Every request is authenticated (client certificate, bearer
// token through TokenReview, or anonymous when allowed) and authorized (AlwaysAllow, or a
// SubjectAccessReview on the node's subresources).
package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// Config is what the server needs; New rejects missing fields.
type Config struct {
	// Kubelet is the effective configuration. The server reads address, port, tlsCertFile,
	// tlsPrivateKeyFile, tlsMinVersion, tlsCipherSuites, authentication, authorization and
	// podLogsDir from it, and /configz serves it.
	Kubelet *kubeletv1beta1.KubeletConfiguration
	// NodeName names the Node (the authorization attributes' name).
	NodeName string
	// Hostname and NodeIPs go into the self-signed serving certificate.
	Hostname string
	NodeIPs  []string
	// CertDir receives the self-signed serving certificate (kubelet.crt, kubelet.key) when
	// Kubelet.TLSCertFile is not set; upstream uses <root-dir>/pki.
	CertDir string
	// ServingCertificate, if set (serverTLSBootstrap), is where the serving certificate
	// comes from instead (tlsCertFile, CertDir and the self-signed one are then not read):
	// every handshake presents its Current(), so a certificate issued or renewed later is
	// served at once; while it has none, handshakes fail with upstream's "no serving
	// certificate available for the kubelet". /metrics then has upstream's
	// kubelet_certificate_manager_server_ttl_seconds.
	ServingCertificate CertificateSource
	// Client creates TokenReviews and SubjectAccessReviews.
	Client kubernetes.Interface
	// Runtime is the container runtime.
	Runtime Runtime
	// Pods lists the pods the node runs.
	Pods func() []*v1.Pod
	// Transitions serves /debug/pods/{namespace}/{name}/transitions (nil: not served).
	Transitions http.Handler
	// Stats serves /stats/summary, /metrics/resource and /metrics/cadvisor (nil: not served).
	Stats Stats
	// RootDir is the kubelet's root directory (checkpoints go to <RootDir>/checkpoints).
	RootDir string
	// NodeLogDir is the folder /logs/ serves ("": upstream's /var/log/).
	NodeLogDir string
}

// CertificateSource is the current serving certificate (client-go's certificate.Manager
// has it); nil while there is none.
type CertificateSource interface {
	Current() *tls.Certificate
}

// Runtime is what the server needs from the container runtime (*cri.Client has it).
type Runtime interface {
	PodState(ctx context.Context, node string, uid types.UID) (*cri.PodState, error)
	// Counts are the pods with a ready sandbox and the containers by state.
	Counts() (runningPods int, containers map[cri.ContainerState]int)
	ListContainers(ctx context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error)
	ContainerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error)
	ListContainerStats(ctx context.Context, filter *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error)
	Exec(ctx context.Context, id string, cmd []string, s cri.Streams) (string, error)
	Attach(ctx context.Context, id string, s cri.Streams) (string, error)
	PortForward(ctx context.Context, sandboxID string, ports []int32) (string, error)
	// For /runningpods, /run and /checkpoint (handlers_node.go).
	ListSandboxes(ctx context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error)
	RunInContainer(ctx context.Context, id string, cmd []string) ([]byte, error)
	CheckpointContainer(ctx context.Context, id, location string, timeout int64) error
}

// Server is the kubelet API server.
type Server struct {
	cfg     Config
	ln      net.Listener
	tls     *tls.Config
	handler http.Handler
	authn   *authenticator
	authz   *authorizer
}

// New checks cfg, loads (or creates) the serving certificate and opens the listener, so
// that start-up problems (a port in use, a bad certificate) are reported at once. Run
// serves on it.
func New(cfg Config) (*Server, error) {
	if cfg.Kubelet == nil || cfg.NodeName == "" || cfg.Runtime == nil || cfg.Pods == nil {
		return nil, errors.New("server: Kubelet, NodeName, Runtime and Pods are required")
	}
	k := cfg.Kubelet
	webhook := k.Authentication.Webhook.Enabled != nil && *k.Authentication.Webhook.Enabled ||
		k.Authorization.Mode == kubeletv1beta1.KubeletAuthorizationModeWebhook
	if cfg.Client == nil && webhook {
		return nil, errors.New("server: webhook authentication or authorization needs a Client")
	}
	if cfg.ServingCertificate == nil && k.TLSCertFile == "" && cfg.CertDir == "" {
		return nil, errors.New("server: CertDir is required without tlsCertFile (--tls-cert-file)")
	}
	if k.PodLogsDir == "" {
		return nil, errors.New("server: Kubelet.PodLogsDir is required")
	}
	s := &Server{cfg: cfg}
	var err error
	if s.tls, err = tlsConfig(cfg); err != nil {
		return nil, err
	}
	s.authn = newAuthenticator(k.Authentication, cfg.Client)
	if s.authz, err = newAuthorizer(k.Authorization, cfg.Client); err != nil {
		return nil, err
	}
	s.handler = s.withAuth(s.routes())
	addr := net.JoinHostPort(k.Address, strconv.Itoa(int(k.Port)))
	if s.ln, err = net.Listen("tcp", addr); err != nil {
		return nil, fmt.Errorf("port (--port) %s: %w", addr, err)
	}
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Handler is the server's HTTP handler, authentication and authorization included.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves until ctx ends, then shuts down: it stops accepting, and the requests still
// running (log streams, which end with ctx) get a few seconds to finish. Upgraded streams
// (exec, attach, port-forward) belong to their connections and end with them.
func (s *Server) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		// As upstream's: idle keep-alive connections are closed after 90 s (the default
		// keep-alive of Go clients), so clients that never close theirs hold nothing.
		IdleTimeout:    90 * time.Second,
		MaxHeaderBytes: 1 << 20,
		BaseContext:    func(net.Listener) context.Context { return ctx },
		ErrorLog:       klog.NewStandardLogger("INFO"),
	}
	logger.Info("Serving the kubelet API", "address", s.ln.Addr().String())
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(s.ln, "", "") }()
	select {
	case err := <-done:
		return fmt.Errorf("kubelet API server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-done
	return nil
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.Handle("GET /metrics/probes", probeMetricsHandler())
	mux.HandleFunc("GET /pods", s.pods)
	mux.HandleFunc("GET /configz", s.configz)
	s.statsRoutes(mux)
	mux.HandleFunc("GET /containerLogs/{namespace}/{pod}/{container}", s.containerLogs)
	if s.cfg.Transitions != nil {
		mux.Handle("GET /debug/pods/{namespace}/{name}/transitions", s.cfg.Transitions)
	}
	// Go's profiles, as upstream serves them when enableProfilingHandler is set (its
	// default); they are nodes/proxy like every path without a subresource of its own.
	if p := s.cfg.Kubelet.EnableProfilingHandler; p == nil || *p {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	s.nodeRoutes(mux)
	for _, m := range []string{"GET", "POST"} {
		mux.HandleFunc(m+" /exec/{namespace}/{pod}/{container}", s.exec)
		mux.HandleFunc(m+" /exec/{namespace}/{pod}/{uid}/{container}", s.exec)
		mux.HandleFunc(m+" /attach/{namespace}/{pod}/{container}", s.attach)
		mux.HandleFunc(m+" /attach/{namespace}/{pod}/{uid}/{container}", s.attach)
		mux.HandleFunc(m+" /portForward/{namespace}/{pod}", s.portForward)
		mux.HandleFunc(m+" /portForward/{namespace}/{pod}/{uid}", s.portForward)
	}
	return mux
}

// pods serves the pods the node runs as a v1 PodList.
func (s *Server) pods(w http.ResponseWriter, _ *http.Request) {
	list := v1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}}
	for _, p := range s.cfg.Pods() {
		list.Items = append(list.Items, *p)
	}
	writeJSON(w, list)
}

// configz serves the effective configuration as upstream does: {"kubeletconfig": {...}}.
func (s *Server) configz(w http.ResponseWriter, _ *http.Request) {
	k := *s.cfg.Kubelet
	k.TypeMeta.Kind, k.TypeMeta.APIVersion = "", ""
	writeJSON(w, map[string]any{"kubeletconfig": k})
}

// podByName finds one of the node's pods.
func (s *Server) podByName(namespace, name string) *v1.Pod {
	for _, p := range s.cfg.Pods() {
		if p.Namespace == namespace && p.Name == name {
			return p
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		httpError(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// httpError answers with msg as plain text, as upstream's kubelet writes its errors (no
// trailing newline, so the API server passes the message on unchanged).
func httpError(w http.ResponseWriter, msg string, code int) {
	h := w.Header()
	h.Del("Content-Length")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}
