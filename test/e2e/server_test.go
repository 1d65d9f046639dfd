package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	authnv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// The kubelet API, used the way clients use it: through the API server (logs, exec,
// attach, port-forward) and directly on the node's port (metrics, authentication and
// authorization).

func adminConfig(t *testing.T) *rest.Config {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", bed.AdminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

func containerRunning(name string) func(*v1.Pod) bool {
	return func(p *v1.Pod) bool {
		cs := containerStatus(p, name)
		return cs != nil && cs.State.Running != nil
	}
}

// apiStatus GETs path on the API server as the admin and decodes the error Status it
// answers. (Checked over plain HTTP: client-go's log requests report a kubelet's error
// as "the server rejected our request for an unknown reason".)
func apiStatus(ctx context.Context, t *testing.T, path string) metav1.Status {
	t.Helper()
	rc := adminConfig(t)
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", rc.Host+path, nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st metav1.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("GET %s: %d, not a Status: %v", path, resp.StatusCode, err)
	}
	return st
}

func podLogs(ctx context.Context, p *v1.Pod, o *v1.PodLogOptions) (string, error) {
	b, err := bed.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, o).DoRaw(ctx)
	return string(b), err
}

// TestServerLogsLastPartWithoutNewline: output that ends without a newline is kept by the
// runtime as a partial (P) line that no full one follows; the log still shows it, at once,
// as upstream's does (the container exits right after writing it).
func TestServerLogsLastPartWithoutNewline(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "srv-logs-part")
	watchNode(ctx, t, k.NodeName, isReady)
	pod := newPod(k.NodeName, "sh", "-c", "echo first; printf no-newline")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	p := watchPod(ctx, t, createPod(ctx, t, pod), "succeeded", phaseIs(v1.PodSucceeded))
	for _, o := range []*v1.PodLogOptions{{}, {Follow: true}} {
		if got, err := podLogs(ctx, p, o); err != nil || got != "first\nno-newline" {
			t.Errorf("logs %+v: %q, %v; want %q", o, got, err, "first\nno-newline")
		}
	}
}

// TestServerLogsFollow streams a running container's log through the API server: lines
// arrive as they are written, and the stream ends when the container exits.
func TestServerLogsFollow(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "srv-logs")
	watchNode(ctx, t, k.NodeName, isReady)
	pod := newPod(k.NodeName, "sh", "-c", "echo line-0; sleep 3; echo line-1; sleep 1; echo line-2")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	p := watchPod(ctx, t, createPod(ctx, t, pod), "running", containerRunning("main"))

	stream, err := bed.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &v1.PodLogOptions{Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var lines []string
	var times []time.Time
	sc := bufio.NewScanner(stream)
	for sc.Scan() {
		lines, times = append(lines, sc.Text()), append(times, time.Now())
	}
	end := time.Now()
	if err := sc.Err(); err != nil {
		t.Fatalf("stream: %v (got %q)", err, lines)
	}
	if strings.Join(lines, ",") != "line-0,line-1,line-2" {
		t.Fatalf("followed lines %q", lines)
	}
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Errorf("line-1 came %v after line-0; the container wrote it 3s later, so the log was not streamed", gap)
	}
	t.Logf("stream ended %v after the last line", end.Sub(times[2]))

	// The finished container's log with upstream's options.
	p = watchPod(ctx, t, p, "Succeeded", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded })
	for _, tc := range []struct {
		o    v1.PodLogOptions
		want string
	}{
		{v1.PodLogOptions{}, "line-0\nline-1\nline-2\n"},
		{v1.PodLogOptions{TailLines: ptr(int64(2))}, "line-1\nline-2\n"},
		{v1.PodLogOptions{LimitBytes: ptr(int64(9))}, "line-0\nli"},
		{v1.PodLogOptions{Follow: true}, "line-0\nline-1\nline-2\n"}, // ends: the container has exited
	} {
		got, err := podLogs(ctx, p, &tc.o)
		if err != nil || got != tc.want {
			t.Errorf("logs %+v: %q %v, want %q", tc.o, got, err, tc.want)
		}
	}
	got, err := podLogs(ctx, p, &v1.PodLogOptions{Timestamps: true, TailLines: ptr(int64(1))})
	ts, rest, _ := strings.Cut(got, " ")
	if _, perr := time.Parse(time.RFC3339Nano, ts); err != nil || perr != nil || rest != "line-2\n" {
		t.Errorf("timestamps: %q %v", got, err)
	}
	st := apiStatus(ctx, t, fmt.Sprintf("/api/v1/namespaces/%s/pods/%s/log?previous=true", p.Namespace, p.Name))
	if want := fmt.Sprintf(`previous terminated container "main" in pod %q not found`, p.Name); st.Code != 400 || st.Message != want {
		t.Errorf("previous of a container that never restarted: %d %q, want 400 %q", st.Code, st.Message, want)
	}
}

// TestServerLogsPrevious reads the current and the previous run of a restarting container.
func TestServerLogsPrevious(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "srv-prev")
	watchNode(ctx, t, k.NodeName, isReady)
	// Each run prints its own id; runs end after 2s and the container restarts.
	p := createPod(ctx, t, newPod(k.NodeName, "sh", "-c", "echo run-$(cat /proc/sys/kernel/random/uuid); sleep 2; exit 1"))
	restarted := func(p *v1.Pod) bool { cs := containerStatus(p, "main"); return cs != nil && cs.RestartCount >= 1 }
	p = watchPod(ctx, t, p, "restarted", restarted)
	for {
		count := containerStatus(p, "main").RestartCount
		prev, err1 := podLogs(ctx, p, &v1.PodLogOptions{Previous: true})
		cur, err2 := podLogs(ctx, p, &v1.PodLogOptions{})
		np, err := bed.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if containerStatus(np, "main").RestartCount != count || cur == "" {
			p = np // restarted meanwhile, or the new run has not printed yet: again
			select {
			case <-ctx.Done():
				t.Fatalf("no stable restart to read: %s", describe(p))
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if err1 != nil || err2 != nil {
			t.Fatalf("logs: previous %v, current %v", err1, err2)
		}
		if !strings.HasPrefix(prev, "run-") || !strings.HasPrefix(cur, "run-") || prev == cur {
			t.Errorf("previous run %q, current run %q: want two different runs", prev, cur)
		}
		return
	}
}

func execRequest(p *v1.Pod, o *v1.PodExecOptions) *url.URL {
	return bed.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(p.Namespace).Name(p.Name).
		SubResource("exec").VersionedParams(o, scheme.ParameterCodec).URL()
}

// TestServerExec runs commands with stdin through the API server, over SPDY and over
// WebSockets (which the API server turns into SPDY towards the kubelet), and attaches to
// a container waiting on its stdin.
func TestServerExec(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "srv-exec")
	watchNode(ctx, t, k.NodeName, isReady)
	p := watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sleep", "3600")), "running", containerRunning("main"))
	rc := adminConfig(t)

	opts := &v1.PodExecOptions{Container: "main", Command: []string{"sh", "-c", "cat; echo to-stderr >&2"}, Stdin: true, Stdout: true, Stderr: true}
	spdyExec, err := remotecommand.NewSPDYExecutor(rc, "POST", execRequest(p, opts))
	if err != nil {
		t.Fatal(err)
	}
	wsExec, err := remotecommand.NewWebSocketExecutor(rc, "GET", execRequest(p, opts).String())
	if err != nil {
		t.Fatal(err)
	}
	for name, ex := range map[string]remotecommand.Executor{"spdy": spdyExec, "websocket": wsExec} {
		var stdout, stderr bytes.Buffer
		err := ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("hello\nworld\n"), Stdout: &stdout, Stderr: &stderr})
		if err != nil || stdout.String() != "hello\nworld\n" || stderr.String() != "to-stderr\n" {
			t.Errorf("%s exec: stdout %q stderr %q err %v", name, stdout.String(), stderr.String(), err)
		}
	}

	// The exit code comes back.
	ex, err := remotecommand.NewSPDYExecutor(rc, "POST", execRequest(p, &v1.PodExecOptions{Container: "main", Command: []string{"sh", "-c", "exit 3"}, Stdout: true}))
	if err != nil {
		t.Fatal(err)
	}
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: io.Discard})
	var ee utilexec.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 3 {
		t.Errorf("exit 3: err %v", err)
	}

	// Attach to a container that reads one line from its stdin.
	ap := newPod(k.NodeName, "sh", "-c", "read line; echo got-$line")
	ap.Spec.Containers[0].Stdin, ap.Spec.Containers[0].StdinOnce = true, true
	ap.Spec.RestartPolicy = v1.RestartPolicyNever
	ap = watchPod(ctx, t, createPod(ctx, t, ap), "running", containerRunning("main"))
	u := bed.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(ap.Namespace).Name(ap.Name).SubResource("attach").
		VersionedParams(&v1.PodAttachOptions{Container: "main", Stdin: true, Stdout: true}, scheme.ParameterCodec).URL()
	ax, err := remotecommand.NewSPDYExecutor(rc, "POST", u)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := ax.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: strings.NewReader("ping\n"), Stdout: &out}); err != nil || out.String() != "got-ping\n" {
		t.Errorf("attach: %q %v", out.String(), err)
	}
}

// TestServerPortForward reaches the test app's HTTP port through the API server, with
// SPDY and with SPDY tunnelled over a WebSocket.
func TestServerPortForward(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "srv-pf")
	watchNode(ctx, t, k.NodeName, isReady)
	// Forwarded only once the app serves (Ready), as a user waits for a pod to be Ready.
	pod := testAppPod(k.NodeName, "serve", "--http=:8080")
	pod.Spec.Containers[0].ReadinessProbe = httpProbe("/healthz", 8080)
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Ready", podReady)
	rc := adminConfig(t)
	u := bed.Client.CoreV1().RESTClient().Post().Resource("pods").Namespace(p.Namespace).Name(p.Name).SubResource("portforward").URL()

	transport, upgrader, err := spdy.RoundTripperFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	wsDialer, err := portforward.NewSPDYOverWebsocketDialer(u, rc)
	if err != nil {
		t.Fatal(err)
	}
	dialers := map[string]httpstream.Dialer{
		"spdy":      spdy.NewDialer(upgrader, &http.Client{Transport: transport}, "POST", u),
		"websocket": wsDialer,
	}
	for name, d := range dialers {
		body, err := forwardAndGet(ctx, d, "/healthz")
		if err != nil || body != "ok\n" {
			t.Errorf("%s port-forward: GET /healthz = %q, %v", name, body, err)
		}
	}
}

// forwardAndGet forwards a local port to the pod's 8080 for one GET.
func forwardAndGet(ctx context.Context, dialer httpstream.Dialer, path string) (string, error) {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan struct{})
	pf, err := portforward.NewOnAddressesWithContext(fctx, dialer, []string{"127.0.0.1"}, []string{"0:8080"}, ready, io.Discard, io.Discard)
	if err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- pf.ForwardPorts() }()
	defer func() { cancel(); <-done }()
	select {
	case <-ready:
	case err := <-done:
		return "", fmt.Errorf("port-forward ended: %w", err)
	case <-ctx.Done():
		return "", ctx.Err()
	}
	ports, err := pf.GetPorts()
	if err != nil {
		return "", err
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d%s", ports[0].Local, path), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// kubeletTLS is the TLS configuration of a client of the kubelet's own port: with a client
// certificate (none if certFile is ""), not verifying the serving certificate (the
// kubelet's is self-signed, as upstream's).
func kubeletTLS(t *testing.T, certFile, keyFile string) *tls.Config {
	t.Helper()
	tc := &tls.Config{InsecureSkipVerify: true}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc
}

// kubeletRequest sends method path to the kubelet's own port over TLS with tc, with a
// bearer token unless it is "", and returns the status, the headers and the body. It does
// not follow redirects, and closes its idle connections when done.
func kubeletRequest(ctx context.Context, t *testing.T, k *testbed.Kubelet, tc *tls.Config, method, path, token string) (int, http.Header, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer c.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, method, fmt.Sprintf("https://%s:%d%s", testbed.NodeIP, k.Port, path), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// kubeletGet GETs path on the kubelet's own port with a client certificate (none if
// certFile is ""), and optionally a bearer token.
func kubeletGet(ctx context.Context, t *testing.T, k *testbed.Kubelet, path, certFile, keyFile, token string) (int, string) {
	t.Helper()
	return kubeletGetTLS(ctx, t, k, kubeletTLS(t, certFile, keyFile), path, token)
}

// kubeletGetTLS GETs path on the kubelet's own port over TLS with tc.
func kubeletGetTLS(ctx context.Context, t *testing.T, k *testbed.Kubelet, tc *tls.Config, path, token string) (int, string) {
	t.Helper()
	code, _, body := kubeletRequest(ctx, t, k, tc, "GET", path, token)
	return code, body
}

// TestServerMetrics scrapes /metrics on the node's port as a cluster admin and finds the
// running pod and container counted from the runtime, and client-go's request metrics of
// the node's own API requests; /pods, /healthz and /stats/summary answer too.
func TestServerMetrics(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "srv-metrics")
	watchNode(ctx, t, k.NodeName, isReady)
	p := watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sleep", "3600")), "running", containerRunning("main"))
	crt, key, err := bed.PKI.Issue("e2e-kubelet-admin", "e2e-kubelet-admin", []string{"system:masters"}, nil)
	if err != nil {
		t.Fatal(err)
	}

	code, body := kubeletGet(ctx, t, k, "/metrics", crt, key, "")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	gauge := func(name, label, value string) float64 {
		for _, m := range families[name].GetMetric() {
			if label == "" {
				return m.GetGauge().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetGauge().GetValue()
				}
			}
		}
		return -1
	}
	if n := gauge("kubelet_running_pods", "", ""); n != 1 {
		t.Errorf("kubelet_running_pods = %v, want 1", n)
	}
	if n := gauge("kubelet_running_containers", "container_state", "running"); n != 1 {
		t.Errorf(`kubelet_running_containers{container_state="running"} = %v, want 1`, n)
	}
	for _, name := range []string{"kubelet_runtime_operations_duration_seconds", "kubelet_pod_start_duration_seconds", "process_start_time_seconds", "go_goroutines",
		"rest_client_requests_total", "rest_client_request_duration_seconds"} {
		if families[name] == nil {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if code, body := kubeletGet(ctx, t, k, "/metrics/probes", crt, key, ""); code != 200 {
		t.Errorf("/metrics/probes: %d %s", code, body)
	}
	if code, body := kubeletGet(ctx, t, k, "/healthz", crt, key, ""); code != 200 || body != "ok" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := kubeletGet(ctx, t, k, "/pods", crt, key, ""); code != 200 || !strings.Contains(body, string(p.UID)) {
		t.Errorf("/pods: %d, pod %s not listed", code, p.UID)
	}
	if code, body := kubeletGet(ctx, t, k, "/stats/summary", crt, key, ""); code != 200 || !strings.Contains(body, `"podRef":{"name":"`+p.Name) ||
		!strings.Contains(body, `"workingSetBytes"`) {
		t.Errorf("/stats/summary: %d %s", code, body)
	}
}

// TestServerAuth: without credentials 401; a client certificate or a service-account
// token without RBAC rights on the node 403; a token whose account may get nodes/metrics
// 200; an invalid token 401.
func TestServerAuth(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "srv-auth")
	watchNode(ctx, t, k.NodeName, isReady)

	if code, body := kubeletGet(ctx, t, k, "/metrics", "", "", ""); code != 401 || strings.TrimSpace(body) != "Unauthorized" {
		t.Errorf("no credentials: %d %q, want 401 Unauthorized", code, body)
	}
	crt, key, err := bed.PKI.Issue("e2e-nobody", "e2e-nobody", []string{"e2e-group"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "Forbidden (user=e2e-nobody, verb=get, resource=nodes, subresource(s)=[metrics])"
	if code, body := kubeletGet(ctx, t, k, "/metrics", crt, key, ""); code != 403 || strings.TrimSpace(body) != want {
		t.Errorf("certificate without rights: %d %q, want 403 %q", code, body, want)
	}

	ns := "default"
	token := func(sa string) string {
		_, err := bed.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = bed.Client.CoreV1().ServiceAccounts(ns).Delete(context.Background(), sa, metav1.DeleteOptions{})
		})
		tr, err := bed.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	suffix := fmt.Sprint(time.Now().UnixNano() % 100000)
	denied, allowed := token("kubelet-api-denied-"+suffix), token("kubelet-api-reader-"+suffix)
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "e2e-node-metrics-" + suffix},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes/metrics"}}}}
	if _, err := bed.Client.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "kubelet-api-reader-" + suffix, Namespace: ns}}}
	if _, err := bed.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.RbacV1().ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
		_ = bed.Client.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{})
	})

	wantUser := fmt.Sprintf("user=system:serviceaccount:%s:kubelet-api-denied-%s,", ns, suffix)
	if code, body := kubeletGet(ctx, t, k, "/metrics", "", "", denied); code != 403 || !strings.Contains(body, wantUser) {
		t.Errorf("token without rights: %d %q, want 403 naming %s", code, body, wantUser)
	}
	// RBAC bindings reach the authorizer's cache shortly; poll until the grant is seen.
	for {
		code, body := kubeletGet(ctx, t, k, "/metrics", "", "", allowed)
		if code == 200 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("token with nodes/metrics: %d %q, want 200", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The same account may not list the node's pods (nodes/pods or nodes/proxy).
	if code, _ := kubeletGet(ctx, t, k, "/pods", "", "", allowed); code != 403 {
		t.Errorf("token with only nodes/metrics on /pods: %d, want 403", code)
	}
	if code, _ := kubeletGet(ctx, t, k, "/metrics", "", "", "not-a-token"); code != 401 {
		t.Errorf("invalid token: %d, want 401", code)
	}
}
