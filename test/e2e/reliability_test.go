package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// TestReliabilityLogRotation: a container printing in a loop cannot fill the disk: its log
// is rotated at containerLogMaxSize, older files compressed, at most containerLogMaxFiles
// kept, and `kubectl logs` keeps working on the live file.
func TestReliabilityLogRotation(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "rel-logs", "--container-log-max-size=64Ki", "--container-log-max-files=3")
	watchNode(ctx, t, k.NodeName, isReady)
	// About 40 KB/s of 2000-character lines.
	pod := newPod(k.NodeName, "sh", "-c", `i=0; while true; do i=$((i+1)); echo "line $i $(head -c 1990 /dev/zero | tr '\0' x)"; sleep 0.05; done`)
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	dir := filepath.Join(k.RootDir, "pod-logs", p.Namespace+"_"+p.Name+"_"+string(p.UID), "main")
	// A follower started before any rotation must keep receiving lines across them.
	follow, err := bed.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &v1.PodLogOptions{Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	var lastFollowed atomic.Int64
	go func() {
		sc := bufio.NewScanner(follow)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 1 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				lastFollowed.Store(n)
			}
		}
	}()

	var files []string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		files, _ = filepath.Glob(filepath.Join(dir, "0.log*"))
		gz, _ := filepath.Glob(filepath.Join(dir, "0.log.*.gz"))
		if len(gz) > 0 && len(files) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rotation with compression after 60s: %v", files)
		}
	}
	// Keep watching two more monitor periods: never more than 3 files, live file bounded.
	for end := time.Now().Add(21 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		files, _ = filepath.Glob(filepath.Join(dir, "0.log*"))
		if len(files) > 3 {
			t.Fatalf("%d log files kept, want at most 3: %v", len(files), files)
		}
		if fi, err := os.Stat(filepath.Join(dir, "0.log")); err == nil && fi.Size() > 2<<20 {
			t.Fatalf("live log grew to %d bytes", fi.Size())
		}
	}
	rc, err := bed.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &v1.PodLogOptions{TailLines: ptr(int64(1))}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.HasPrefix(string(b), "line ") {
		t.Fatalf("kubectl logs after rotation: %q", b)
	}
	latest, _ := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	if got := lastFollowed.Load(); latest-got > 100 {
		t.Errorf("kubectl logs -f stopped at line %d while the container is at line %d (lost across rotation)", got, latest)
	}
}

// TestReliabilityRestartDuringBackOff: minikubelet SIGKILLed while a container is in
// crash-loop back-off and started again: the back-off resumes (the third restart still
// waits about 20 s after the second instance's exit) instead of restarting at once, the
// restart count is kept, and the node's Lease is renewed again.
func TestReliabilityRestartDuringBackOff(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	k := startKubelet(t, "rel-backoff")
	watchNode(ctx, t, k.NodeName, isReady)
	pod := newPod(k.NodeName, "sh", "-c", "sleep 1; exit 1")
	p := watchPod(ctx, t, createPod(ctx, t, pod), "second instance exited, backing off", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.RestartCount == 2 && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
	})
	exited := containerStatus(p, "main").LastTerminationState.Terminated.FinishedAt.Time
	k.Kill()
	if _, err := bed.RestartKubelet(k); err != nil {
		t.Fatal(err)
	}
	restarted := watchPod(ctx, t, p, "third restart", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.RestartCount >= 3
	})
	cs := containerStatus(restarted, "main")
	started := exited
	if cs.State.Running != nil {
		started = cs.State.Running.StartedAt.Time
	} else if cs.LastTerminationState.Terminated != nil {
		started = cs.LastTerminationState.Terminated.StartedAt.Time
	}
	// Upstream's schedule: 20 s after the second crash (±2 s, timestamps have 1 s precision).
	if wait := started.Sub(exited); wait < 17*time.Second {
		t.Errorf("third restart %v after the second exit: the back-off was reset by the restart (want ~20s)", wait)
	}
	lease, err := bed.Client.CoordinationV1().Leases("kube-node-lease").Get(ctx, k.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if renew := lease.Spec.RenewTime; renew == nil || time.Since(renew.Time) > 15*time.Second {
		t.Errorf("lease not renewed after the restart: %v", renew)
	}
}

// TestReliabilityAPIServerOutage: the API server is stopped for 60 s. Pods keep running,
// a liveness failure during the outage still restarts the container, a pod that finishes
// during the outage is reported once the API is back (the newest status wins), the
// minikubelet process survives, and new pods are picked up afterwards.
func TestReliabilityAPIServerOutage(t *testing.T) {
	ctx := ctxFor(t, 4*time.Minute)
	k := startKubelet(t, "rel-outage")
	watchNode(ctx, t, k.NodeName, isReady)
	live := testAppPod(k.NodeName, "serve", "--http=:8080")
	live.Spec.Containers[0].LivenessProbe = httpProbe("/healthz", 8080)
	// Liveness (failureThreshold 1) starts only once the app serves: a probe racing the
	// app's start would restart it before the outage.
	live.Spec.Containers[0].StartupProbe = httpProbe("/healthz", 8080)
	live.Spec.Containers[0].StartupProbe.FailureThreshold = 30
	running := func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning }
	pl := watchPod(ctx, t, createPod(ctx, t, live), "started (serving)", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return running(p) && cs != nil && cs.Started != nil && *cs.Started
	})
	done := newPod(k.NodeName, "sh", "-c", "sleep 15; exit 0")
	done.Spec.RestartPolicy = v1.RestartPolicyNever
	pd := watchPod(ctx, t, createPod(ctx, t, done), "Running", running)
	steady := watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sleep", "3600")), "Running", running)
	_, steadyBefore := runtimeObjects(ctx, t, string(steady.UID))

	if err := bed.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	restarted := false
	defer func() {
		if !restarted {
			_ = bed.StartAPIServer()
		}
	}()
	poke(t, pl, "/healthz/fail")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if _, cts := runtimeObjects(ctx, t, string(pl.UID)); len(cts) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("liveness failure during the outage did not restart the container")
		}
	}
	time.Sleep(time.Until(down.Add(60 * time.Second)))
	if k.Exited() {
		t.Fatalf("minikubelet exited during the outage:\n%s", k.Tail(40))
	}
	if err := bed.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	t.Logf("API server back after %v", time.Since(down).Round(time.Second))

	watchPod(ctx, t, pl, "restart written", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.RestartCount >= 1 && cs.State.Running != nil
	})
	watchPod(ctx, t, pd, "Succeeded written", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodSucceeded })
	_, steadyAfter := runtimeObjects(ctx, t, string(steady.UID))
	if len(steadyAfter) != 1 || steadyAfter[0] != steadyBefore[0] {
		t.Errorf("steady pod's containers %v -> %v: it must not be touched by the outage", steadyBefore, steadyAfter)
	}
	watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sleep", "3600")), "new pod Running", running)
	watchNode(ctx, t, k.NodeName, isReady)
}

// TestReliabilityBadPodSpecs: specs the API accepts but the node cannot run each get a
// clear reason, while a healthy pod beside them keeps running and a pod with 50
// containers runs: unknown runtimeClassName, a hostPort already taken by another pod, an
// image with a digest that does not exist, and a pod recreated under the same name.
func TestReliabilityBadPodSpecs(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	k := startKubelet(t, "rel-badspec")
	watchNode(ctx, t, k.NodeName, isReady)
	running := func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning }
	healthy := watchPod(ctx, t, createPod(ctx, t, newPod(k.NodeName, "sleep", "3600")), "Running", running)

	// The API admits only existing RuntimeClasses; this one names a handler containerd lacks.
	class := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "e2e-missing-handler"}, Handler: "nosuchhandler"}
	if _, err := bed.Client.NodeV1().RuntimeClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = bed.Client.NodeV1().RuntimeClasses().Delete(context.Background(), class.Name, metav1.DeleteOptions{})
	})
	rc := newPod(k.NodeName, "sleep", "3600")
	rc.Spec.RuntimeClassName = ptr(class.Name)
	prc := createPod(ctx, t, rc)

	port := freeHostPort(t)
	first := newPod(k.NodeName, "sleep", "3600")
	first.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 80, HostPort: port}}
	watchPod(ctx, t, createPod(ctx, t, first), "Running", running)
	second := newPod(k.NodeName, "sleep", "3600")
	second.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 81, HostPort: port}}
	p2 := watchPod(ctx, t, createPod(ctx, t, second), "rejected", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if p2.Status.Reason != "NodePorts" || p2.Status.Message != "Pod was rejected: Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports" {
		t.Errorf("hostPort conflict: reason %q message %q", p2.Status.Reason, p2.Status.Message)
	}

	digest := newPod(k.NodeName, "sleep", "3600")
	digest.Spec.Containers[0].Image = bed.Registry.Host + "/busybox@sha256:" + strings.Repeat("0", 64)
	watchPod(ctx, t, createPod(ctx, t, digest), "ErrImagePull or ImagePullBackOff", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return cs != nil && cs.State.Waiting != nil && (cs.State.Waiting.Reason == "ErrImagePull" || cs.State.Waiting.Reason == "ImagePullBackOff")
	})

	many := newPod(k.NodeName)
	many.Spec.Containers = nil
	for i := 0; i < 50; i++ {
		many.Spec.Containers = append(many.Spec.Containers, v1.Container{Name: "c" + strconv.Itoa(i), Image: testbed.BusyboxImage,
			ImagePullPolicy: v1.PullIfNotPresent, Command: []string{"sleep", "3600"}})
	}
	watchPod(ctx, t, createPod(ctx, t, many), "50 containers Ready", podReady)

	waitEvent(ctx, t, prc, "FailedCreatePodSandBox", "Failed to create pod sandbox: ")
	if msg := eventReasons(ctx, t, prc)["FailedCreatePodSandBox"]; !strings.Contains(msg, `"nosuchhandler"`) {
		t.Errorf("FailedCreatePodSandBox does not name the handler: %q", msg)
	}
	if p, _ := bed.Client.CoreV1().Pods(prc.Namespace).Get(ctx, prc.Name, metav1.GetOptions{}); p.Status.Phase != v1.PodPending {
		t.Errorf("unknown runtime class: phase %s, want Pending", p.Status.Phase)
	}

	// Same name, new pod: the old one's status never lands on the new one.
	again := newPod(k.NodeName, "sh", "-c", "exit 7")
	again.Name = healthy.Name
	again.Spec.RestartPolicy = v1.RestartPolicyNever
	if err := bed.Client.CoreV1().Pods("default").Delete(ctx, healthy.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitPodGone(ctx, healthy); err != nil {
		t.Fatal(err)
	}
	p := watchPod(ctx, t, createPod(ctx, t, again), "recreated pod Failed", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if cs := containerStatus(p, "main"); p.UID == healthy.UID || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 7 {
		t.Errorf("recreated pod: %s", describe(p))
	}
	if k.Exited() {
		t.Fatal("minikubelet exited")
	}
	watchNode(ctx, t, k.NodeName, isReady)
}

func freeHostPort(t *testing.T) int32 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

// TestReliabilityContainerdRestart: containerd stopped and started again while two pods
// run: the node goes NotReady and comes back Ready, the running containers are adopted
// (same IDs, no restart), and the event stream is subscribed again: each container's later
// exit is seen within 500 ms of it (the safety-net relist alone runs only every 5 s, so it
// would see both that fast once in a hundred runs; containerd 1.6 on a slow host itself
// takes about 200 ms to show an exit).
func TestReliabilityContainerdRestart(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	k := startKubelet(t, "rel-containerd")
	watchNode(ctx, t, k.NodeName, isReady)
	var pods []*v1.Pod
	for range 2 {
		pod := testAppPod(k.NodeName, "serve", "--http=:8080")
		pod.Spec.RestartPolicy = v1.RestartPolicyNever
		pods = append(pods, watchPod(ctx, t, createPod(ctx, t, pod), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning }))
	}
	ids := map[string]string{}
	for _, p := range pods {
		ids[string(p.UID)] = containerID(p, "main")
	}

	if err := bed.StopContainerd(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			_ = bed.StartContainerd()
		}
	})
	watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool { return !isReady(n) })
	if err := bed.StartContainerd(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	watchNode(ctx, t, k.NodeName, isReady)
	for uid, before := range ids {
		if _, cts := runtimeObjects(ctx, t, uid); len(cts) != 1 || cts[0] != before {
			t.Fatalf("containers after the containerd restart %v, want the one adopted %s", cts, before)
		}
	}
	crt, key, err := bed.PKI.Issue("e2e-rel-admin", "e2e-rel-admin", []string{"system:masters"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fast := func() int {
		_, m := kubeletGet(ctx, t, k, "/metrics", crt, key, "")
		for _, line := range strings.Split(m, "\n") {
			if strings.HasPrefix(line, `minikubelet_container_exit_seen_seconds_bucket{le="0.5"}`) {
				n, _ := strconv.Atoi(strings.Fields(line)[1])
				return n
			}
		}
		return 0
	}
	fastBefore := fast()
	for _, p := range pods {
		get(t, p.Status.PodIP+":8080", "/exit?code=4")
		done := watchPod(ctx, t, p, "Failed", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
		if cs := containerStatus(done, "main"); containerID(done, "main") != ids[string(p.UID)] || cs.RestartCount != 0 || cs.State.Terminated.ExitCode != 4 {
			t.Errorf("after the exit: %s", describe(done))
		}
	}
	if after := fast(); after-fastBefore != len(pods) {
		t.Errorf("of the %d exits after the containerd restart, %d were seen within 500 ms (exits seen that fast: %d before, %d after): event stream not re-subscribed", len(pods), after-fastBefore, fastBefore, after)
	}
}

// TestReliabilityKillWhileStartingAndTerminating: minikubelet SIGKILLed while one pod is
// still in its init container and another is terminating (inside its preStop hook), then
// started again: the starting pod goes on from where it was (the finished init container is
// not run again, the main container starts once), and the terminating pod still completes
// its termination (the API object is deleted and nothing is left in containerd).
func TestReliabilityKillWhileStartingAndTerminating(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	k := startKubelet(t, "rel-kill")
	watchNode(ctx, t, k.NodeName, isReady)

	stopping := newPod(k.NodeName, "sleep", "3600")
	stopping.Spec.TerminationGracePeriodSeconds = ptr(int64(20))
	stopping.Spec.Containers[0].Lifecycle = &v1.Lifecycle{PreStop: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"sleep", "4"}}}}
	ps := watchPod(ctx, t, createPod(ctx, t, stopping), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })

	starting := newPod(k.NodeName, "sleep", "3600")
	starting.Spec.InitContainers = []v1.Container{{Name: "init", Image: testbed.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent,
		Command: []string{"sleep", "3"}}}
	pst := watchPod(ctx, t, createPod(ctx, t, starting), "init running", func(p *v1.Pod) bool {
		return len(p.Status.InitContainerStatuses) == 1 && p.Status.InitContainerStatuses[0].State.Running != nil
	})
	if err := bed.Client.CoreV1().Pods(ps.Namespace).Delete(ctx, ps.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // inside the 4 s preStop hook and the 3 s init container
	k.Kill()
	if _, err := bed.RestartKubelet(k); err != nil {
		t.Fatal(err)
	}

	if err := waitPodGone(ctx, ps); err != nil {
		t.Fatalf("terminating pod not finished after the restart: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if sbs, cts := runtimeObjects(ctx, t, string(ps.UID)); len(sbs)+len(cts) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the terminated pod's sandbox or containers are left in containerd")
		}
	}
	p := watchPod(ctx, t, pst, "started pod Running", func(p *v1.Pod) bool {
		cs := containerStatus(p, "main")
		return p.Status.Phase == v1.PodRunning && cs != nil && cs.State.Running != nil
	})
	if ic := p.Status.InitContainerStatuses[0]; ic.RestartCount != 0 || ic.State.Terminated == nil || ic.State.Terminated.ExitCode != 0 {
		t.Errorf("init container after the restart: %+v", ic)
	}
	if _, cts := runtimeObjects(ctx, t, string(p.UID)); len(cts) != 2 {
		t.Errorf("%d containers for the started pod, want the init container once and main once", len(cts))
	}
}
