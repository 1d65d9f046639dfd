package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
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
	var (
		mu               sync.Mutex
		gotUA, gotHeader string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotUA, gotHeader = r.UserAgent(), r.Header.Get("X-Test")
		mu.Unlock()
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
	probe := func(path string, p intstr.IntOrString) (Result, string, error) {
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
		// Upstream's text: the client's timeout, not a context deadline, ends the request.
		{"/hang", intstr.FromInt(port), Failure, `Get "` + srv.URL + `/hang": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`},
	}
	for _, tc := range cases {
		got, msg, err := probe(tc.path, tc.port)
		if err != nil || got != tc.want || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s %v: %v %q %v, want %v containing %q", tc.path, tc.port, got, msg, err, tc.want, tc.msg)
		}
	}
	// A port name the container does not have: the probe errored (upstream's unknown).
	if _, _, err := probe("/ok", intstr.FromString("nope")); err == nil || err.Error() != `couldn't find port: nope in container "c"` {
		t.Errorf("unknown port name: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
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
	if r, msg, err := Run(context.Background(), p, Target{PodIP: host}); r != Success || err != nil {
		t.Errorf("open port: %v %q %v", r, msg, err)
	}
	ln.Close()
	want := "dial tcp " + ln.Addr().String() + ": connect: connection refused"
	if r, msg, err := Run(context.Background(), p, Target{PodIP: host}); r != Failure || msg != want || err != nil {
		t.Errorf("closed port: %v %q %v, want %q", r, msg, err, want)
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
	run := func(svc *string) (Result, string, error) {
		return Run(context.Background(), &v1.Probe{TimeoutSeconds: 1, ProbeHandler: v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: int32(port), Service: svc}}}, Target{PodIP: host})
	}
	if r, msg, err := run(nil); r != Success || err != nil {
		t.Errorf("serving: %v %q %v", r, msg, err)
	}
	sick := "sick"
	if r, msg, _ := run(&sick); r != Failure || msg != `service unhealthy (responded with "NOT_SERVING")` {
		t.Errorf("not serving: %v %q", r, msg)
	}
	gs.Stop()
	// Nothing listens: upstream's blocking dial runs out of time.
	want := fmt.Sprintf("timeout: failed to connect service %q within 1s: context deadline exceeded", ln.Addr().String())
	if r, msg, err := run(nil); r != Failure || msg != want || err != nil {
		t.Errorf("server gone: %v %q %v, want %q", r, msg, err, want)
	}

	// A gRPC server without the health service.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bare := grpc.NewServer()
	go bare.Serve(ln2)
	defer bare.Stop()
	_, port2 := hostPort(t, ln2.Addr().String())
	r, msg, err := Run(context.Background(), &v1.Probe{TimeoutSeconds: 1, ProbeHandler: v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: int32(port2)}}}, Target{PodIP: host})
	if want := "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): unknown service grpc.health.v1.Health"; r != Failure || msg != want || err != nil {
		t.Errorf("no health service: %v %q %v, want %q", r, msg, err, want)
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
		err  string // the probe errored (upstream's unknown result)
	}{
		{exec(0, nil), Success, "out", ""},
		{exec(2, nil), Failure, "out", ""},
		{exec(-1, errors.New("container not found")), Failure, "", "container not found"},
		{exec(-1, context.DeadlineExceeded), Failure, `command "check it" timed out`, ""},
	}
	for i, tc := range cases {
		r, msg, err := Run(context.Background(), p, Target{ContainerID: "cid", Exec: tc.exec})
		if gotErr := fmt.Sprint(err); r != tc.want || msg != tc.msg || (tc.err == "") != (err == nil) || (err != nil && gotErr != tc.err) {
			t.Errorf("case %d: %v %q %v, want %v %q %q", i, r, msg, err, tc.want, tc.msg, tc.err)
		}
	}
}
