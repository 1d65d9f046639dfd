package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// The rest of the kubelet API (node logs, /runningpods, /run, /checkpoint), JSON logging
// and tracing, used as clients use them: through the API server's node proxy as an admin
// and as a user without rights, and on the node's own port.

// startConfigured starts minikubelet with extraConfig appended to its config file, and
// stops it when the test ends (as startKubelet does). Nodes reached through the API
// server's node proxy report testbed.UpstreamNodeIP: the proxy refuses loopback ones.
func startConfigured(t *testing.T, name, extraConfig string, extra ...string) *testbed.Kubelet {
	t.Helper()
	k, err := bed.StartMinikubeletWithConfig(name, extraConfig, extra...)
	if err != nil {
		t.Fatal(err)
	}
	stopWhenDone(t, k)
	return k
}

// apiRaw sends method path (with its query) to the API server as rc's user, like
// `kubectl get --raw`, and returns the status and body.
func apiRaw(ctx context.Context, t *testing.T, rc *rest.Config, method, path string) (int, string) {
	t.Helper()
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, method, rc.Host+path, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// nobodyConfig is the admin's API server address with a client certificate of a user
// with no rights at all.
func nobodyConfig(t *testing.T, user string) (*rest.Config, string, string) {
	t.Helper()
	crt, key, err := bed.PKI.Issue(user, user, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc := rest.CopyConfig(adminConfig(t))
	rc.CertData, rc.KeyData, rc.CertFile, rc.KeyFile = nil, nil, crt, key
	return rc, crt, key
}

// TestObserveNodeLogs: with enableSystemLogQuery, the node's log folder is served at
// /logs/ and queried with ?query= through the API server; a user without nodes/proxy is
// refused by the API server, and one without nodes/log by the kubelet; bad parameters get
// upstream's 400 and 406 with its messages.
func TestObserveNodeLogs(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	dir := t.TempDir()
	content := "first line\nsecond line\n"
	must(t, os.MkdirAll(filepath.Join(dir, "e2e"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "observe.log"), []byte(content), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "e2e", "nested.log"), []byte("nested\n"), 0o644))
	must(t, bed.AddProxyableNodeIP())
	k := startConfigured(t, "obs-logs", "enableSystemLogQuery: true\n", "--node-log-dir="+dir, "--node-ip="+testbed.UpstreamNodeIP)
	watchNode(ctx, t, k.NodeName, isReady)
	admin := adminConfig(t)
	base := "/api/v1/nodes/" + k.NodeName + "/proxy/logs/"
	for _, tc := range []struct {
		path string
		code int
		body string // whole body, or with a leading "~" a part of it
	}{
		{"?query=./observe.log", 200, content},
		{"?query=e2e/nested.log", 200, "nested\n"},
		{"?query=observe", 200, content}, // a service without journal: its <name>.log
		{"observe.log", 200, content},
		{"", 200, `~<a href="observe.log">observe.log</a>`},
		{"?query=nosuchservice", 200, "\nlog not found for nosuchservice\n"},
		{"?query=observe&tailLines=abc", 400, `tailLines: Invalid value: "abc": strconv.Atoi: parsing "abc": invalid syntax`},
		{"?query=observe&sinceTime=yesterday", 400, `sinceTime: Invalid value: "yesterday": invalid time format`},
		{"?query=", 400, `query: Invalid value: [""]: may not be empty`},
		{"?query=observe&tailLines=-1", 406, "tailLines: Invalid value: -1: must be between 0 and 100000, inclusive"},
		{"?query=observe&boot=1", 406, "boot: Invalid value: 1: must be less than 1"},
		{"?query=./observe.log&pattern=first", 406, `query: Invalid value: ["./observe.log"]: cannot specify file with options`},
		{"?query=../../etc/passwd", 406, "~path escapes from parent"},
		{"?query=./missing.log", 406, "~no such file or directory"},
		{"observe.log?query=observe", 406, "path not allowed in query mode"},
	} {
		code, body := apiRaw(ctx, t, admin, "GET", base+tc.path)
		ok := body == tc.body
		if part, found := strings.CutPrefix(tc.body, "~"); found {
			ok = strings.Contains(body, part)
		}
		if code != tc.code || !ok {
			t.Errorf("admin GET logs/%s: %d %q, want %d %q", tc.path, code, body, tc.code, tc.body)
		}
	}
	nobody, crt, key := nobodyConfig(t, "e2e-obs-nobody")
	if code, body := apiRaw(ctx, t, nobody, "GET", base+"?query=./observe.log"); code != 403 || strings.Contains(body, "first line") {
		t.Errorf("user without nodes/proxy through the API server: %d %q, want 403", code, body)
	}
	want := "Forbidden (user=e2e-obs-nobody, verb=get, resource=nodes, subresource(s)=[log])"
	if code, body := kubeletGet(ctx, t, k, "/logs/?query=./observe.log", crt, key, ""); code != 403 || body != want {
		t.Errorf("user without nodes/log on the node's port: %d %q, want 403 %q", code, body, want)
	}
}

// TestObserveKubeletAPI: /runningpods lists the running pod from the runtime, POST /run
// answers the command's output, GET /run is refused, and /checkpoint passes containerd
// 1.6's refusal on with upstream's status and message.
func TestObserveKubeletAPI(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	must(t, bed.AddProxyableNodeIP())
	k := startConfigured(t, "obs-api", "", "--node-ip="+testbed.UpstreamNodeIP)
	watchNode(ctx, t, k.NodeName, isReady)
	p := watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sleep", "3600")), "running", containerRunning("main"))
	admin := adminConfig(t)
	proxy := "/api/v1/nodes/" + k.NodeName + "/proxy"

	code, body := apiRaw(ctx, t, admin, "GET", proxy+"/runningpods/")
	var list v1.PodList
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil {
		t.Fatalf("runningpods: %d %s", code, body)
	}
	found := false
	for _, rp := range list.Items {
		if rp.UID == p.UID {
			found = rp.Name == p.Name && rp.Namespace == p.Namespace && len(rp.Spec.Containers) == 1 &&
				rp.Spec.Containers[0].Name == "main" && rp.Spec.Containers[0].Image != ""
		}
	}
	if !found {
		t.Errorf("runningpods has no pod %s with its container main: %s", p.UID, body)
	}

	run := fmt.Sprintf("%s/run/%s/%s/main?cmd=echo+observe-run", proxy, p.Namespace, p.Name)
	if code, body := apiRaw(ctx, t, admin, "POST", run); code != 200 || body != "observe-run\n" {
		t.Errorf("POST run: %d %q", code, body)
	}
	runUID := fmt.Sprintf("%s/run/%s/%s/%s/main?cmd=echo+with-uid", proxy, p.Namespace, p.Name, p.UID)
	if code, body := apiRaw(ctx, t, admin, "POST", runUID); code != 200 || body != "with-uid\n" {
		t.Errorf("POST run with uid: %d %q", code, body)
	}
	if code, body := apiRaw(ctx, t, admin, "GET", run); code != http.StatusMethodNotAllowed {
		t.Errorf("GET run: %d %q, want 405", code, body)
	}
	if code, body := apiRaw(ctx, t, admin, "POST", proxy+"/run/default/no-such-pod/main?cmd=true"); code != 404 || body != "pod does not exist" {
		t.Errorf("run in an unknown pod: %d %q", code, body)
	}
	if code, body := apiRaw(ctx, t, admin, "POST", fmt.Sprintf("%s/run/%s/%s/nope?cmd=true", proxy, p.Namespace, p.Name)); code != 500 || body != `container not found ("nope")` {
		t.Errorf("run in an unknown container: %d %q", code, body)
	}

	cp := fmt.Sprintf("%s/checkpoint/%s/%s/main", proxy, p.Namespace, p.Name)
	prefix := fmt.Sprintf("checkpointing of %s/%s/main failed (rpc error: code = Unimplemented desc = ", p.Namespace, p.Name)
	if code, body := apiRaw(ctx, t, admin, "POST", cp+"?timeout=10"); code != 500 || !strings.HasPrefix(body, prefix) || !strings.HasSuffix(body, ")") {
		t.Errorf("checkpoint on containerd 1.6: %d %q, want 500 %q...)", code, body, prefix)
	}
	if code, body := apiRaw(ctx, t, admin, "POST", cp+"?timeout=x"); code != 404 || body != "cannot parse value of timeout parameter" {
		t.Errorf("checkpoint with a bad timeout: %d %q", code, body)
	}
	if code, body := apiRaw(ctx, t, admin, "POST", fmt.Sprintf("%s/checkpoint/%s/%s/nope", proxy, p.Namespace, p.Name)); code != 404 || body != "container nope does not exist" {
		t.Errorf("checkpoint of an unknown container: %d %q", code, body)
	}
}

// klogText is the header of a klog text line (I1203 07:01:02.123456 ...).
var klogText = regexp.MustCompile(`^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6}`)

// TestObserveJSONLogs: with --logging-format=json the kubelet writes JSON lines (ts, msg,
// and v for info messages), as upstream's component-base json format, and no text lines.
func TestObserveJSONLogs(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "obs-json", "--logging-format=json")
	watchNode(ctx, t, k.NodeName, isReady)
	for {
		b, err := os.ReadFile(k.LogPath)
		must(t, err)
		started, jsonLines, textLines := false, 0, 0
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if klogText.MatchString(line) {
				textLines++
			}
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			_, ts := m["ts"].(float64)
			msg, _ := m["msg"].(string)
			_, v := m["v"].(float64)
			if ts && msg != "" {
				jsonLines++
			}
			started = started || ts && v && msg == "Starting minikubelet"
		}
		if textLines > 0 {
			t.Fatalf("%d klog text lines with --logging-format=json:\n%s", textLines, k.Tail(20))
		}
		if started && jsonLines > 1 {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("no JSON line {ts, msg: Starting minikubelet, v} in the log (%d JSON lines):\n%s", jsonLines, k.Tail(20))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// collector is an OTLP gRPC trace collector keeping every span it receives.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.ResourceSpans
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spans = append(c.spans, req.GetResourceSpans()...)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// startCollector serves a collector on 127.0.0.1 until the test ends.
func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	c := &collector{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, c)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return c, ln.Addr().String()
}

// traced reports whether the collector has a syncPod span of the pod with a CRI call span
// in the same trace, from service "kubelet".
func (c *collector) traced(podName string) (syncs, criCalls int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	traces := map[string]bool{}
	var cri []string
	for _, rs := range c.spans {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				if service != "kubelet" {
					continue
				}
				if strings.HasPrefix(s.GetName(), "runtime.v1.RuntimeService/") {
					cri = append(cri, string(s.GetTraceId()))
				}
				if s.GetName() != "syncPod" {
					continue
				}
				for _, a := range s.GetAttributes() {
					if a.GetKey() == "k8s.pod.name" && a.GetValue().GetStringValue() == podName {
						traces[string(s.GetTraceId())] = true
					}
				}
			}
		}
	}
	for _, id := range cri {
		ok = ok || traces[id]
	}
	return len(traces), len(cri), ok
}

// TestObserveTracing: with a tracing section, pod syncs ("syncPod") and the CRI calls they
// make (otelgrpc client spans, children of the sync) reach an OTLP collector as service
// "kubelet".
func TestObserveTracing(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	c, addr := startCollector(t)
	k := startConfigured(t, "obs-trace", fmt.Sprintf("tracing:\n  endpoint: %s\n  samplingRatePerMillion: 1000000\n", addr))
	watchNode(ctx, t, k.NodeName, isReady)
	p := watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sleep", "3600")), "running", containerRunning("main"))
	for {
		syncs, calls, ok := c.traced(p.Name)
		if ok {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("no syncPod span of %s with a CRI call in its trace (%d syncPod traces, %d CRI spans)", p.Name, syncs, calls)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
