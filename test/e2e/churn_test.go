package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
	"github.com/minikubelet/minikubelet/test/testbed"
)

// churnDuration is how long TestReliabilityChurnThrottled churns: 60 s in `make test`,
// MINIKUBELET_CHURN_DURATION=10m in `make test-long`.
func churnDuration(t *testing.T) time.Duration {
	v := os.Getenv("MINIKUBELET_CHURN_DURATION")
	if v == "" {
		return 60 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 30*time.Second {
		t.Fatalf("MINIKUBELET_CHURN_DURATION=%q: want a duration of at least 30s", v)
	}
	return d
}

// rssBytes is the resident set size of process pid.
func rssBytes(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// TestReliabilityChurnThrottled: 100 pods churning (created, crash-looping, probed,
// mounting service-account tokens, deleted) on a node whose API client is throttled to
// 10 requests/s. The node stays Ready throughout (its heartbeats are not throttled);
// status writes coalesce (fewer patches than status changes); once the churn stops every
// pod's status in the API is the node's newest; after all pods are deleted nothing is
// left in the runtime, the goroutines are back to their idle count, and the agent's
// memory did not keep growing while the churn went on.
func TestReliabilityChurnThrottled(t *testing.T) {
	const target, ceiling = 100, 150 // live pods; live + terminating
	churn := churnDuration(t)
	ctx := ctxFor(t, churn+8*time.Minute)
	const qps = 10
	k := startKubelet(t, "rel-churn", fmt.Sprintf("--kube-api-qps=%d", qps), fmt.Sprintf("--kube-api-burst=%d", 2*qps))
	watchNode(ctx, t, k.NodeName, isReady)
	crt, key, err := bed.PKI.Issue("e2e-kubelet-admin", "e2e-kubelet-admin", []string{"system:masters"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	scrape := func() map[string]float64 {
		code, body := kubeletGet(ctx, t, k, "/metrics", crt, key, "")
		if code != 200 {
			t.Fatalf("/metrics: %d", code)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for name, f := range families {
			for _, m := range f.GetMetric() {
				out[name] += m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetHistogram().GetSampleSum()
			}
		}
		return out
	}
	time.Sleep(3 * time.Second) // let start-up settle before the idle baseline
	idle := scrape()
	idleRSS, err := rssBytes(k.Pid())
	if err != nil {
		t.Fatal(err)
	}

	// Watchers: the node's Ready condition and the agent's RSS, sampled while churning.
	var mu sync.Mutex
	var notReady []string
	type sample struct {
		at  time.Duration
		rss int64
	}
	var samples []sample
	start := time.Now()
	mctx, stopMonitors := context.WithCancel(ctx)
	var monitors sync.WaitGroup
	monitors.Go(func() {
		for tick := time.NewTicker(2 * time.Second); ; {
			select {
			case <-mctx.Done():
				tick.Stop()
				return
			case <-tick.C:
			}
			if n, err := bed.Client.CoreV1().Nodes().Get(mctx, k.NodeName, metav1.GetOptions{}); err == nil && !isReady(n) {
				c := readyCondition(n)
				mu.Lock()
				notReady = append(notReady, fmt.Sprintf("%v: %s %s", time.Since(start).Round(time.Second), c.Status, c.Reason))
				mu.Unlock()
			}
			if rss, err := rssBytes(k.Pid()); err == nil {
				mu.Lock()
				samples = append(samples, sample{time.Since(start), rss})
				mu.Unlock()
			}
		}
	})
	defer func() { stopMonitors(); monitors.Wait() }()

	// The churn: keep `target` live pods; each lives 20-40 s, then is deleted. A quarter
	// crash-loop, a quarter mount a service-account token (TokenRequest, kube-root-ca.crt),
	// a quarter have an exec readiness probe, a quarter just sleep.
	run := fmt.Sprintf("c%d", time.Now().UnixNano()%1000000)
	pods := bed.Client.CoreV1().Pods("default")
	created := map[types.UID]bool{}
	deleted := 0
	newChurnPod := func(i int) *v1.Pod {
		p := newPod(k.NodeName, "sleep", "3600")
		p.Name = fmt.Sprintf("%s-%d", run, i)
		p.Labels = map[string]string{"churn": run}
		p.Annotations = map[string]string{"e2e/lifetime": (time.Duration(20+rand.IntN(21)) * time.Second).String()}
		p.Spec.TerminationGracePeriodSeconds = ptr(int64(1))
		c := &p.Spec.Containers[0]
		switch i % 4 {
		case 0:
			c.Command = []string{"sh", "-c", "sleep 2; exit 1"}
		case 1:
			p.Spec.AutomountServiceAccountToken = nil
		case 2:
			c.ReadinessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}, PeriodSeconds: 5}
		}
		return p
	}
	seq := 0
	for time.Since(start) < churn {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "churn=" + run})
		if err != nil {
			t.Fatal(err)
		}
		live := 0
		for i := range list.Items {
			p := &list.Items[i]
			if p.DeletionTimestamp != nil {
				continue
			}
			life, _ := time.ParseDuration(p.Annotations["e2e/lifetime"])
			if time.Since(p.CreationTimestamp.Time) > life {
				if err := pods.Delete(ctx, p.Name, metav1.DeleteOptions{}); err == nil {
					deleted++
				}
				continue
			}
			live++
		}
		for n := min(target-live, ceiling-len(list.Items)); n > 0; n-- {
			p, err := pods.Create(ctx, newChurnPod(seq), metav1.CreateOptions{})
			seq++
			if err != nil {
				t.Fatal(err)
			}
			created[p.UID] = true
		}
		time.Sleep(500 * time.Millisecond)
	}
	churned, churnElapsed := scrape(), time.Since(start)
	t.Logf("churned %v: %d pods created, %d deleted", churn, len(created), deleted)
	if k.Exited() {
		t.Fatalf("minikubelet exited during the churn:\n%s", k.Tail(40))
	}

	// Nothing lost: every remaining pod's status in the API becomes the node's newest.
	nodeStatuses := func() map[types.UID]v1.PodStatus {
		code, body := kubeletGet(ctx, t, k, "/pods", crt, key, "")
		if code != 200 {
			t.Fatalf("/pods: %d", code)
		}
		var l v1.PodList
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			t.Fatal(err)
		}
		out := map[types.UID]v1.PodStatus{}
		for _, p := range l.Items {
			out[p.UID] = p.Status
		}
		return out
	}
	converged := map[types.UID]bool{}
	var lastDiff string
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "churn=" + run})
		if err != nil {
			t.Fatal(err)
		}
		onNode, missing := nodeStatuses(), 0
		for _, p := range list.Items {
			if p.DeletionTimestamp != nil || converged[p.UID] {
				continue
			}
			if st, ok := onNode[p.UID]; ok && status.Summary(st) == status.Summary(p.Status) {
				converged[p.UID] = true
				continue
			}
			missing++
			lastDiff = fmt.Sprintf("%s: API %s / node %s", p.Name, status.Summary(p.Status), status.Summary(onNode[p.UID]))
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pods' API status never matched the node's newest, e.g. %s", missing, lastDiff)
		}
	}
	during := scrape()
	changes := during["minikubelet_pod_status_changes_total"] - idle["minikubelet_pod_status_changes_total"]
	writes := during["minikubelet_pod_status_writes_total"] - idle["minikubelet_pod_status_writes_total"]
	// Writes coalesce where the throttle holds them back: when the node's requests waited
	// in client-go's rate limiter while churning (the seconds summed over requests; the
	// events' and heartbeats' clients are not limited at these rates). A runtime slow
	// enough to make fewer changes than the client may write gets one patch per change,
	// as upstream's status manager gives it.
	const limiter = "rest_client_rate_limiter_duration_seconds"
	waited := churned[limiter] - idle[limiter]
	rate := (churned["rest_client_requests_total"] - idle["rest_client_requests_total"]) / churnElapsed.Seconds()
	saturated := waited >= churnElapsed.Seconds()/4
	t.Logf("status: %.0f changes, %.0f patches (%.2f per change); %d pods converged; while churning %.1f API requests/s (limit %d/s on the node's client), %.1f s waited in its limiter (throttled: %v)",
		changes, writes, writes/changes, len(converged), rate, qps, waited, saturated)
	if changes == 0 {
		t.Errorf("no status change counted")
	} else if saturated && writes >= changes {
		t.Errorf("status writes did not coalesce under throttling: %.0f patches for %.0f changes", writes, changes)
	}

	// Clean-up: delete everything; nothing may stay in the API or the runtime.
	if err := pods.DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "churn=" + run}); err != nil {
		t.Fatal(err)
	}
	rt, _, closeCRI, err := testbed.CRIClients(bed.CRIEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer closeCRI()
	var left []string
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(time.Second) {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "churn=" + run})
		if err != nil {
			t.Fatal(err)
		}
		sbs, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		if err != nil {
			t.Fatal(err)
		}
		left = left[:0]
		for _, s := range sbs.Items {
			if created[types.UID(s.Labels[cri.LabelPodUID])] {
				left = append(left, s.Metadata.Name)
			}
		}
		if len(list.Items) == 0 && len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after deleting every churn pod: %d left in the API, sandboxes left in the runtime: %v", len(list.Items), left)
		}
	}
	stopMonitors()
	monitors.Wait()
	// Workers end once their pods' deletions are through the throttled client; then the
	// goroutines are back to (about) the idle count.
	var after map[string]float64
	wound := time.Now()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(2 * time.Second) {
		if after = scrape(); after["go_goroutines"] <= idle["go_goroutines"]+30 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("goroutines: idle %.0f, churning %.0f, after %.0f (%v after the last pod was gone)",
		idle["go_goroutines"], during["go_goroutines"], after["go_goroutines"], time.Since(wound).Round(time.Second))
	if after["go_goroutines"] > idle["go_goroutines"]+30 {
		t.Errorf("goroutines leaked: %.0f idle before the churn, %.0f after it ended; where they wait:\n%s",
			idle["go_goroutines"], after["go_goroutines"], goroutineDump(t, k))
	}

	// Every pod's cgroup goes with the pod (its worker removes it; the orphan sweep
	// repairs a removal that failed).
	poll(ctx, t, time.Minute, "no pod cgroup left after every churn pod was gone", func(context.Context) error {
		if left := podCgroupsUnder(bed.NodeCgroupRoot(k.NodeName) + "/kubepods"); len(left) > 0 {
			return fmt.Errorf("%d left, e.g. %s", len(left), left[0])
		}
		return nil
	})

	mu.Lock()
	defer mu.Unlock()
	if len(notReady) > 0 {
		t.Errorf("node not Ready during the churn: %v", notReady)
	}
	// Memory: the peak of the last third of the churn may not exceed the peak of the
	// middle third by more than a fifth (plus 8 MiB for GC timing): the first third ramps
	// up to 100 pods; after that the agent's memory must not keep growing.
	var mid, late []int64
	for _, s := range samples {
		switch {
		case s.at > churn*2/3 && s.at <= churn:
			late = append(late, s.rss)
		case s.at > churn/3 && s.at <= churn*2/3:
			mid = append(mid, s.rss)
		}
	}
	if len(mid) == 0 || len(late) == 0 {
		t.Fatalf("too few RSS samples: %d", len(samples))
	}
	peakMid, peakLate := slices.Max(mid), slices.Max(late)
	var all []string
	for _, s := range samples {
		all = append(all, fmt.Sprintf("%.0fs:%.0f", s.at.Seconds(), float64(s.rss)/(1<<20)))
	}
	t.Logf("RSS MiB: idle %.1f, peak middle third %.1f, peak last third %.1f; samples %s",
		float64(idleRSS)/(1<<20), float64(peakMid)/(1<<20), float64(peakLate)/(1<<20), strings.Join(all, " "))
	if peakLate > peakMid+peakMid/5+8<<20 {
		t.Errorf("RSS kept growing: peak %.1f MiB in the last third of the churn, %.1f MiB in the middle third",
			float64(peakLate)/(1<<20), float64(peakMid)/(1<<20))
	}
}

// goroutineDump makes the agent dump its goroutines (Go's SIGQUIT handler; the agent
// exits) and counts them by the first frame outside the runtime and the standard library.
func goroutineDump(t *testing.T, k *testbed.Kubelet) string {
	if err := k.Signal(syscall.SIGQUIT); err != nil {
		return err.Error()
	}
	_ = k.Wait()
	b, err := os.ReadFile(k.LogPath)
	if err != nil {
		return err.Error()
	}
	counts, example := map[string]int{}, map[string]string{}
	for _, g := range strings.Split(string(b), "\n\n") {
		if !strings.HasPrefix(g, "goroutine ") {
			continue
		}
		where := "?"
		for _, line := range strings.Split(g, "\n")[1:] {
			if strings.Contains(line, ".go:") || !strings.Contains(line, "(") {
				continue
			}
			if !strings.HasPrefix(line, "runtime.") && !strings.HasPrefix(line, "sync.") && !strings.HasPrefix(line, "internal/") &&
				!strings.HasPrefix(line, "net.") && !strings.HasPrefix(line, "net/") && !strings.HasPrefix(line, "io.") &&
				!strings.HasPrefix(line, "bufio.") && !strings.HasPrefix(line, "crypto/") && !strings.HasPrefix(line, "time.") {
				where = line[:strings.LastIndex(line, "(")]
				break
			}
		}
		counts[where]++
		example[where] = g
	}
	var out []string
	for w, n := range counts {
		out = append(out, fmt.Sprintf("%4d %s", n, w))
	}
	slices.Sort(out)
	slices.Reverse(out)
	for _, line := range out[:min(2, len(out))] {
		out = append(out, "e.g. "+example[strings.TrimSpace(line)[strings.Index(strings.TrimSpace(line), " ")+1:]])
	}
	return strings.Join(out, "\n")
}
