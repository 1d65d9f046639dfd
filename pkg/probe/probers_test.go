package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func hostPort(t *testing.T, addr string) (string, int) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return h, n
}

func TestHTTPProbe(t *testing.T) {
	var gotUA, gotHeader string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotUA, gotHeader = r.UserAgent(), r.Header.Get("X-Test")
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte("fine"))
		case "/redirect-same":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/redirect-away":
			http.Redirect(w, r, "http://example.invalid/", http.StatusFound)
		case "/hang":
			time.Sleep(1500 * time.Millisecond)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	host, port := hostPort(t, u.Host)
	c := &v1.Container{Name: "c", Ports: []v1.ContainerPort{{Name: "web", ContainerPort: int32(port)}}}
	probe := func(path string, p intstr.IntOrString) (Result, string) {
		return Run(context.Background(), &v1.Probe{TimeoutSeconds: 1, ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{
			Path: path, Port: p, HTTPHeaders: []v1.HTTPHeader{{Name: "X-Test", Value: "yes"}}}}}, Target{PodIP: host, Container: c})
	}
	cases := []struct {
		path string
		port intstr.IntOrString
		want Result
		msg  string
	}{
		{"/ok", intstr.FromInt(port), Success, "fine"},
		{"/ok", intstr.FromString("web"), Success, "fine"},
		{"/redirect-same", intstr.FromInt(port), Success, "fine"},
		{"/redirect-away", intstr.FromInt(port), Warning, "Probe terminated redirects"},
		{"/fail", intstr.FromInt(port), Failure, "HTTP probe failed with statuscode: 500"},
		{"/hang", intstr.FromInt(port), Failure, "context deadline exceeded"},
		{"/ok", intstr.FromString("nope"), Failure, `couldn't find port: nope in container "c"`},
	}
	for _, tc := range cases {
		got, msg := probe(tc.path, tc.port)
		if got != tc.want || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s %v: %v %q, want %v containing %q", tc.path, tc.port, got, msg, tc.want, tc.msg)
		}
	}
	if gotUA != "kube-probe/1.37" || gotHeader != "yes" {
		t.Errorf("user agent %q header %q", gotUA, gotHeader)
	}
}

func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host, port := hostPort(t, ln.Addr().String())
	p := &v1.Probe{TimeoutSeconds: 1, ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt(port)}}}
	if r, msg := Run(context.Background(), p, Target{PodIP: host}); r != Success {
		t.Errorf("open port: %v %q", r, msg)
	}
	ln.Close()
	if r, msg := Run(context.Background(), p, Target{PodIP: host}); r != Failure || !strings.Contains(msg, "connection refused") {
		t.Errorf("closed port: %v %q", r, msg)
	}
}

func TestGRPCProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("sick", healthpb.HealthCheckResponse_NOT_SERVING)
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go gs.Serve(ln)
	defer gs.Stop()
	host, port := hostPort(t, ln.Addr().String())
	run := func(svc *string) (Result, string) {
		return Run(context.Background(), &v1.Probe{TimeoutSeconds: 1, ProbeHandler: v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: int32(port), Service: svc}}}, Target{PodIP: host})
	}
	if r, msg := run(nil); r != Success {
		t.Errorf("serving: %v %q", r, msg)
	}
	sick := "sick"
	if r, msg := run(&sick); r != Failure || msg != `service unhealthy (responded with "NOT_SERVING")` {
		t.Errorf("not serving: %v %q", r, msg)
	}
	gs.Stop()
	if r, msg := run(nil); r != Failure || !strings.HasPrefix(msg, "timeout: health rpc did not complete within 1s") {
		t.Errorf("server gone: %v %q", r, msg)
	}
}

func TestExecProbe(t *testing.T) {
	exec := func(code int32, err error) ExecFunc {
		return func(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, int32, error) {
			if id != "cid" || timeout != time.Second {
				t.Errorf("exec got id %q timeout %v", id, timeout)
			}
			return []byte("out"), code, err
		}
	}
	p := &v1.Probe{TimeoutSeconds: 1, ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"check", "it"}}}}
	cases := []struct {
		exec ExecFunc
		want Result
		msg  string
	}{
		{exec(0, nil), Success, "out"},
		{exec(2, nil), Failure, "out"},
		{exec(-1, errors.New("container not found")), Failure, "container not found"},
		{exec(-1, context.DeadlineExceeded), Failure, `command "check it" timed out`},
	}
	for i, tc := range cases {
		if r, msg := Run(context.Background(), p, Target{ContainerID: "cid", Exec: tc.exec}); r != tc.want || msg != tc.msg {
			t.Errorf("case %d: %v %q, want %v %q", i, r, msg, tc.want, tc.msg)
		}
	}
}
