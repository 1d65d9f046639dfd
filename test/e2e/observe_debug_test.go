package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// distrolessImage holds nothing but the test app's static binary: no shell, no ps.
const distrolessImage = "docker.io/minikubelet/distroless:v1"

// TestObserveDebug is `kubectl debug` end to end with the pinned kubectl: an ephemeral
// container sharing a shell-less app's process namespace, a node debugging pod reading
// the node's files, and ephemeral containers whose target cannot be joined.
func TestObserveDebug(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	importDistroless(t)
	k := startKubelet(t, "obs-debug")
	watchNode(ctx, t, k.NodeName, isReady)
	t.Run("EphemeralTarget", func(t *testing.T) { debugEphemeralTarget(ctx, t, k.NodeName) })
	t.Run("Node", func(t *testing.T) { debugNode(ctx, t, k.NodeName) })
	t.Run("BadTarget", func(t *testing.T) { debugBadTarget(ctx, t, k.NodeName) })
}

// importDistroless builds the shell-less app image from the test bed's test-app binary.
func importDistroless(t *testing.T) {
	t.Helper()
	bin, err := os.ReadFile(filepath.Join(bed.Dir, "images", "testapp"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := testbed.NewImage([]testbed.File{{Path: "testapp", Data: bin, Mode: 0o755}}, ggcrv1.Config{Entrypoint: []string{"/testapp"}})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "distroless.tar")
	if err := testbed.ImportImages(bed.ContainerdSocket(), archive, map[string]ggcrv1.Image{distrolessImage: img}); err != nil {
		t.Fatal(err)
	}
}

func kubectlCmd(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, filepath.Join(bed.ToolsBin, "kubectl"), append([]string{"--kubeconfig=" + bed.AdminKubeconfig}, args...)...)
}

func ephemeralStatus(p *v1.Pod, name string) *v1.ContainerStatus {
	for i := range p.Status.EphemeralContainerStatuses {
		if p.Status.EphemeralContainerStatuses[i].Name == name {
			return &p.Status.EphemeralContainerStatuses[i]
		}
	}
	return nil
}

// appPod runs the shell-less app (plus the given extra containers) on node.
func appPod(node string, extra ...v1.Container) *v1.Pod {
	p := newPod(node)
	p.Spec.Containers = append([]v1.Container{{Name: "app", Image: distrolessImage, ImagePullPolicy: v1.PullNever,
		Args: []string{"sleep", "1h"}}}, extra...)
	return p
}

// debugEphemeralTarget: `kubectl debug -i --target=app -- sh`, fed `ps` and, once the
// app's process was seen, `exit`: stdin stays open until the answer came, so nothing
// races the attach. The status goes running -> terminated (exit 0), never ready.
func debugEphemeralTarget(ctx context.Context, t *testing.T, node string) {
	p := watchPod(ctx, t, createPod(ctx, t, appPod(node)), "running", containerRunning("app"))
	cmd := kubectlCmd(ctx, "debug", "-i", "-n", p.Namespace, p.Name, "--image="+testbed.BusyboxImage,
		"--target=app", "-c", "dbg", "--", "sh")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "ps\n"); err != nil {
		t.Fatal(err)
	}
	// Read until the app's process shows (the scanner ends when kubectl does).
	var out strings.Builder
	seen := false
	sc := bufio.NewScanner(stdout)
	for !seen && sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		seen = strings.Contains(sc.Text(), "/testapp sleep 1h")
	}
	if !seen {
		_ = cmd.Wait()
		t.Fatalf("kubectl debug never showed the app's process:\nstdout:\n%s\nstderr:\n%s", out.String(), stderr.String())
	}
	// While the session is open the container runs, in the app's process namespace.
	cur, err := bed.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	running := ephemeralStatus(cur, "dbg")
	if running == nil || running.State.Running == nil || running.Ready || running.Started != nil || running.RestartCount != 0 ||
		running.ContainerID == "" || running.ImageID == "" || !strings.Contains(running.Image, "busybox") {
		t.Errorf("ephemeral status during the session: %+v", running)
	}
	_, _ = io.WriteString(stdin, "exit\n")
	_ = stdin.Close()
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		t.Errorf("kubectl debug: %v\nstderr:\n%s", err, stderr.String())
	}
	done := watchPod(ctx, t, p, "debug container terminated", func(p *v1.Pod) bool {
		s := ephemeralStatus(p, "dbg")
		return s != nil && s.State.Terminated != nil
	})
	term := ephemeralStatus(done, "dbg")
	if tr := term.State.Terminated; tr.ExitCode != 0 || tr.Reason != "Completed" || term.Ready || term.RestartCount != 0 ||
		running != nil && term.ContainerID != running.ContainerID {
		t.Errorf("ephemeral status after exit: %+v (was %+v)", term, running)
	}
	if app := containerStatus(done, "app"); app == nil || app.State.Running == nil || app.RestartCount != 0 {
		t.Errorf("app container after the debug session: %+v", app)
	}
	// Its log is the session's output, through the kubelet API.
	if logs, err := podLogs(ctx, done, &v1.PodLogOptions{Container: "dbg"}); err != nil || !strings.Contains(logs, "/testapp sleep 1h") {
		t.Errorf("logs of the ephemeral container: %q %v", logs, err)
	}
	checkEphemeralEvents(ctx, t, done, "dbg", "Pulled", "Created", "Started")
}

// checkEphemeralEvents waits for the container's events with upstream's field path.
func checkEphemeralEvents(ctx context.Context, t *testing.T, p *v1.Pod, name string, reasons ...string) {
	t.Helper()
	field := fmt.Sprintf("spec.ephemeralContainers{%s}", name)
	var got []string
	for {
		evs, err := bed.Client.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{FieldSelector: fields.AndSelectors(
			fields.OneTermEqualSelector("involvedObject.name", p.Name),
			fields.OneTermEqualSelector("involvedObject.fieldPath", field)).String()})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		have := map[string]bool{}
		for _, e := range evs.Items {
			got, have[e.Reason] = append(got, e.Reason+": "+e.Message), true
		}
		missing := false
		for _, r := range reasons {
			missing = missing || !have[r]
		}
		if !missing {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("events on %s: %q, want %v", field, got, reasons)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

var debugPodName = regexp.MustCompile(`Creating debugging pod (\S+) with container`)

// debugNode: `kubectl debug node/<node> -- cat /host/<file>` reads a file the test wrote
// on the node (the node's root is this machine's).
func debugNode(ctx context.Context, t *testing.T, node string) {
	file := filepath.Join(t.TempDir(), "hostname")
	want := fmt.Sprintf("node-file-%d\n", time.Now().UnixNano())
	if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := kubectlCmd(ctx, "debug", "node/"+node, "--image="+testbed.BusyboxImage, "--", "cat", "/host"+file).CombinedOutput()
	m := debugPodName.FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("kubectl debug node: %v\n%s", err, out)
	}
	p, err := bed.Client.CoreV1().Pods("default").Get(ctx, string(m[1]), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = bed.Client.CoreV1().Pods(p.Namespace).Delete(dctx, p.Name, metav1.DeleteOptions{})
		_ = waitPodGone(dctx, p)
	})
	if s := p.Spec; !s.HostPID || !s.HostNetwork || !s.HostIPC {
		t.Errorf("node debugging pod without the host's namespaces: hostPID %v hostNetwork %v hostIPC %v", s.HostPID, s.HostNetwork, s.HostIPC)
	}
	p = watchPod(ctx, t, p, "Succeeded", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed })
	logs, err := podLogs(ctx, p, &v1.PodLogOptions{})
	if p.Status.Phase != v1.PodSucceeded || err != nil || logs != want {
		t.Errorf("node debugging pod: %s, logs %q %v, want %q", describe(p), logs, err, want)
	}
}

// debugBadTarget: a target the API does not know is refused by the API server; a target
// with no container in the runtime fails before the runtime is asked (upstream's
// CreateContainerConfigError "unable to find target container"); a target that is no
// longer running is refused by the runtime (CreateContainerError). The pod's other
// containers go on unaffected.
func debugBadTarget(ctx context.Context, t *testing.T, node string) {
	pod := appPod(node,
		v1.Container{Name: "done", Image: testbed.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent, Command: []string{"true"}},
		v1.Container{Name: "never", Image: "docker.io/minikubelet/absent:v1", ImagePullPolicy: v1.PullNever})
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	p := watchPod(ctx, t, createPod(ctx, t, pod), "app running, done exited", func(p *v1.Pod) bool {
		app, done := containerStatus(p, "app"), containerStatus(p, "done")
		return app != nil && app.State.Running != nil && done != nil && done.State.Terminated != nil
	})

	out, err := kubectlCmd(ctx, "debug", "-n", p.Namespace, p.Name, "--image="+testbed.BusyboxImage, "--target=nosuch", "-c", "dbg-nosuch", "--", "ps").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "targetContainerName") {
		t.Errorf("debug with an unknown target: %v\n%s", err, out)
	}
	for _, target := range []string{"never", "done"} {
		out, err := kubectlCmd(ctx, "debug", "-n", p.Namespace, p.Name, "--image="+testbed.BusyboxImage, "--target="+target, "-c", "dbg-"+target, "--", "ps").CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl debug --target=%s: %v\n%s", target, err, out)
		}
	}
	failed := func(name, reason string) func(*v1.Pod) bool {
		return func(p *v1.Pod) bool {
			s := ephemeralStatus(p, name)
			return s != nil && s.State.Waiting != nil && s.State.Waiting.Reason == reason
		}
	}
	p = watchPod(ctx, t, p, "dbg-never failed", failed("dbg-never", "CreateContainerConfigError"))
	if s := ephemeralStatus(p, "dbg-never"); s.State.Waiting.Message != "unable to find target container never" || s.ContainerID != "" {
		t.Errorf("target with no container: %+v", s)
	}
	p = watchPod(ctx, t, p, "dbg-done failed", failed("dbg-done", "CreateContainerError"))
	s := ephemeralStatus(p, "dbg-done")
	doneID := containerID(p, "done")
	if msg := s.State.Waiting.Message; !strings.Contains(msg, doneID) || !strings.Contains(msg, "is not running") || s.ContainerID != "" {
		t.Errorf("target not running: %+v (want the runtime's error naming %s)", s, doneID)
	}
	t.Logf("runtime's refusal of a target that is not running: %q", s.State.Waiting.Message)
	checkEphemeralEvents(ctx, t, p, "dbg-never", "Failed")
	if app := containerStatus(p, "app"); app.State.Running == nil || app.RestartCount != 0 {
		t.Errorf("app container after failed debug containers: %+v", app)
	}
	if len(p.Status.EphemeralContainerStatuses) != 2 {
		t.Errorf("ephemeral statuses: %+v", p.Status.EphemeralContainerStatuses)
	}
}
