// Command bench runs the same workloads against minikubelet and the pinned upstream kubelet
// (v1.37.2) on one test bed per profile, alternating the two agents, and writes a Markdown
// report and the raw samples to bench/results/<date>.{md,json}. `make bench` runs it (as
// root, like the e2e tests).
//
// Profiles (BENCH_PROFILES): "bound" pods carry spec.nodeName, mount no service-account
// token, and etcd runs with --unsafe-no-fsync (the test bed's default); "ordinary" pods go
// through kube-scheduler, get the kube-api-access token volume, and etcd syncs to disk.
// Both agents run with per-pod QoS cgroups (upstream: its defaults cgroupsPerQOS: true,
// enforceNodeAllocatable: [pods]) under a cgroup root of the bench's own, and maxPods
// BENCH_MAXPODS.
//
// Each agent run gets a fresh node name; between runs every pod is deleted, the agent is
// stopped, the runtime is emptied through CRI and the bench's cgroups are removed. Per run:
//
//  1. pods created one after another, each waited for until Ready: create -> Running and
//     create -> Ready, timestamps taken by a pod watch as the events arrive; then one more
//     pod with the agent's CRI calls counted (its /metrics before and after);
//  2. batches (BENCH_BATCHES) created at once: time until all Ready, pods/s, CRI calls;
//  3. each batch deleted with grace 0: delete call -> DELETED event, and -> no sandbox of
//     the batch left ready in the runtime;
//  4. status write-back: test-app pods asked to exit (GET /exit?code=3) after a random
//     delay (uniform over upstream's 1 s relist period, so neither agent's timers are in
//     phase with the samples): HTTP response -> the watch shows the container terminated;
//  5. crash loop (sh -c 'exit 1', restartPolicy Always, alongside 4): when restarts 1-3
//     were seen;
//  6. the agent process's RSS and CPU time with no pods (then its Go memory statistics, and
//     minikubelet's heap profile), and with BENCH_PODS sleeping pods on the node.
//
// 5 and 6 run in the last profile only. Batches after the first and the full node run in
// the first BENCH_LARGE_ROUNDS rounds only. Once per profile, with no agent running: 7. the
// floor, sandbox + container start straight through CRI, in the cgroup a BestEffort pod of
// the agents gets, one pod after another and each batch size at once; 8. in the last
// profile, the memory floor of client-go (test/cmd/clientfloor: a clientset and one pod
// informer). The agents' shares are reported above the floors.
//
// Environment: BENCH_ROUNDS (3), BENCH_LARGE_ROUNDS (1), BENCH_PROFILES
// (bound,ordinary), BENCH_IDLE (60s), BENCH_MAXPODS (250), BENCH_PODS (BENCH_MAXPODS),
// BENCH_SEQ (20; also the CRI floor's pods), BENCH_BATCHES (30,100; BENCH_BATCH=n alone means one batch of n),
// BENCH_EXITS (10), BENCH_OUT (bench/results), BENCH_TIMEOUT (60m, the
// whole run). MINIKUBELET_RUNTIME (make's RUNTIME) picks the test bed's runtime; a report
// on one other than Debian's containerd is named <date>-<runtime>.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/test/testbed"
)

type config struct {
	Rounds int `json:"rounds"`
	// LargeRounds: the rounds (the first ones) that also run the batches after the first
	// and the full node, the long workloads.
	LargeRounds   int           `json:"large_rounds"`
	Profiles      []string      `json:"profiles"`
	Idle          time.Duration `json:"-"`
	IdleSeconds   float64       `json:"idle_window_s"`
	MaxPods       int           `json:"max_pods"`
	FootprintPods int           `json:"footprint_pods"`
	SeqPods       int           `json:"sequential_pods"`
	Batches       []int         `json:"batches"`
	ExitSamples   int           `json:"exit_samples"`
	// ExitDelayMax bounds the random delay before each /exit: upstream's relist period.
	ExitDelayMax  time.Duration `json:"-"`
	ExitDelayMaxS float64       `json:"exit_delay_max_s"`
	Out           string        `json:"-"`
	Timeout       time.Duration `json:"-"`
	// cores is the machine's (set for the report), to say how busy a batch kept it.
	cores int
}

func envInt(name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		fmt.Fprintf(os.Stderr, "bench: %s=%q: want a non-negative number\n", name, v)
		os.Exit(2)
	}
	return n
}

func envDuration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		fmt.Fprintf(os.Stderr, "bench: %s=%q: want a duration such as 60s\n", name, v)
		os.Exit(2)
	}
	return d
}

// podSubnetSize is the usable addresses of the test bed's pod /24 (less the gateway).
const podSubnetSize = 253

func loadConfig() config {
	c := config{
		Rounds:       envInt("BENCH_ROUNDS", 3),
		Profiles:     envList("BENCH_PROFILES", "bound,ordinary"),
		Idle:         envDuration("BENCH_IDLE", 60*time.Second),
		MaxPods:      envInt("BENCH_MAXPODS", 250),
		SeqPods:      envInt("BENCH_SEQ", 20),
		ExitSamples:  envInt("BENCH_EXITS", 10),
		ExitDelayMax: time.Second,
		Out:          envOr("BENCH_OUT", filepath.Join(testbed.RepoRoot(), "bench", "results")),
		Timeout:      envDuration("BENCH_TIMEOUT", 60*time.Minute),
	}
	// The 100-pod batch and the 250-pod node take about two thirds of an agent's run in the
	// ordinary profile: in every round they would take the default run to about 53 minutes
	// on 2 cores; in the first round only it takes about 31.
	c.LargeRounds = min(envInt("BENCH_LARGE_ROUNDS", 1), c.Rounds)
	c.FootprintPods = envInt("BENCH_PODS", c.MaxPods)
	batches := "30,100"
	if os.Getenv("BENCH_BATCHES") == "" && os.Getenv("BENCH_BATCH") != "" {
		batches = os.Getenv("BENCH_BATCH")
	}
	for _, v := range envList("BENCH_BATCHES", batches) {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			fail("BENCH_BATCHES: %q is not a pod count (want sizes such as 30,100)", v)
		}
		c.Batches = append(c.Batches, n)
	}
	for _, p := range c.Profiles {
		if _, ok := profiles[p]; !ok {
			fail("BENCH_PROFILES: unknown profile %q (have bound, ordinary)", p)
		}
	}
	largest := max(c.FootprintPods, c.ExitSamples+1)
	for _, b := range c.Batches {
		largest = max(largest, b)
	}
	if c.MaxPods < largest || c.MaxPods > podSubnetSize {
		fail("BENCH_MAXPODS=%d: want between the largest workload (%d pods) and %d (the pod subnet)", c.MaxPods, largest, podSubnetSize)
	}
	c.IdleSeconds = c.Idle.Seconds()
	c.ExitDelayMaxS = c.ExitDelayMax.Seconds()
	return c
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(2)
}

func envList(name, def string) []string {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// profile is how pods reach the node and what the control plane does for them.
type profile struct {
	Name string `json:"name"`
	// Scheduled: pods go through kube-scheduler (no spec.nodeName).
	Scheduled bool `json:"scheduled"`
	// Token: automountServiceAccountToken left at its default, so every pod gets the
	// kube-api-access projected volume (token, CA, namespace).
	Token bool `json:"service_account_token"`
	// EtcdFsync: etcd syncs its writes to disk (no --unsafe-no-fsync).
	EtcdFsync bool `json:"etcd_fsync"`
	// Footprint: this profile also runs the crash loop and the footprint workloads (the
	// last profile of the run).
	Footprint bool `json:"footprint"`
}

var profiles = map[string]profile{
	"bound":    {Name: "bound"},
	"ordinary": {Name: "ordinary", Scheduled: true, Token: true, EtcdFsync: true},
}

func (p profile) describe() string {
	if p.Scheduled {
		return "pods through kube-scheduler, kube-api-access token volume on, etcd with fsync"
	}
	return "pods bound with spec.nodeName, no service-account token, etcd with --unsafe-no-fsync"
}

// Results is everything the JSON file holds.
type Results struct {
	Date     string          `json:"date"`
	Env      Environment     `json:"environment"`
	Config   config          `json:"config"`
	Profiles []ProfileResult `json:"profiles"`
	// HeapFile is minikubelet's heap profile after the idle window of its last footprint
	// run; HeapTop its `go tool pprof -top` (inuse_space).
	HeapFile string   `json:"heap_profile,omitempty"`
	HeapTop  []string `json:"heap_top,omitempty"`
	// LoadedHeapFile and LoadedHeapTop: the same with the footprint pods on the node.
	LoadedHeapFile string   `json:"loaded_heap_profile,omitempty"`
	LoadedHeapTop  []string `json:"loaded_heap_top,omitempty"`
	Elapsed        float64  `json:"elapsed_s"`
}

// ProfileResult is one profile's test bed: its CRI floor and the agent runs.
type ProfileResult struct {
	Profile  profile       `json:"profile"`
	BedStart float64       `json:"bed_start_s"`
	Floor    []FloorSample `json:"cri_floor"`
	// BatchFloors: each batch size started at once straight through CRI.
	BatchFloors []BatchFloor `json:"cri_batch_floor,omitempty"`
	// ClientFloor: a client-go program with one pod informer (the footprint profile only).
	ClientFloor *ClientFloor `json:"client_floor,omitempty"`
	Runs        []RunResult  `json:"runs"`
	Elapsed     float64      `json:"elapsed_s"`
}

// Environment describes the machine and the versions measured.
type Environment struct {
	CPU          string  `json:"cpu"`
	Cores        int     `json:"cores"`
	MemoryGiB    float64 `json:"memory_gib"`
	Kernel       string  `json:"kernel"`
	Containerd   string  `json:"containerd"`
	Go           string  `json:"go"`
	Minikubelet  string  `json:"minikubelet"`
	Upstream     string  `json:"upstream_kubelet"`
	SourceCommit string  `json:"source_commit"`
	CgroupRoot   string  `json:"cgroup_root"`
}

// cgroupRoot holds both agents' pod cgroups (<root>/kubepods/...). It is the bench's own:
// the upstream kubelet kills processes in pod cgroups it does not know under its root, so
// the machine's /kubepods, which other test beds' agents use, must stay out of its reach.
// It lies in the cgroup root of the bench's bed ("bench"), so that a failed run's pods,
// which the runtime may no longer stop, go with the bed.
const cgroupRoot = "/mkbed-bench/pods"

func main() {
	if js := os.Getenv("BENCH_REPORT"); js != "" {
		if err := rewriteReport(js); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	cfg := loadConfig()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	if err := run(ctx, cfg); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("%w (the whole run is bounded by BENCH_TIMEOUT=%v)", err, cfg.Timeout)
		}
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	began := time.Now()
	res := &Results{Date: began.Format("2006-01-02"), Config: cfg}
	logf("bench: profiles %s, %d rounds per agent (%d with the large workloads), idle window %v, node maxPods %d",
		strings.Join(cfg.Profiles, ","), cfg.Rounds, cfg.LargeRounds, cfg.Idle, cfg.MaxPods)
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	for i, name := range cfg.Profiles {
		p := profiles[name]
		p.Footprint = i == len(cfg.Profiles)-1
		pr, err := runProfile(ctx, cfg, res, p)
		if err != nil {
			return fmt.Errorf("profile %s: %w", name, err)
		}
		res.Profiles = append(res.Profiles, *pr)
	}
	res.HeapTop = heapTopOf(cfg, res.HeapFile)
	res.LoadedHeapTop = heapTopOf(cfg, res.LoadedHeapFile)
	res.Elapsed = time.Since(began).Seconds()
	return writeReport(cfg, res)
}

// runProfile starts a test bed for p, measures the CRI floor, and runs the agents in turn.
func runProfile(ctx context.Context, cfg config, res *Results, p profile) (_ *ProfileResult, err error) {
	began := time.Now()
	pr := &ProfileResult{Profile: p}
	logf("bench: profile %s: %s", p.Name, p.describe())
	bed, err := testbed.Start(testbed.Options{Name: "bench", EtcdFsync: p.EtcdFsync, Log: logf})
	if err != nil {
		return nil, fmt.Errorf("start the test bed: %w", err)
	}
	defer bed.Stop()
	defer func() { // runs before the bed, and its logs, are gone
		if err != nil {
			keepLogs(filepath.Join(bed.Dir, "logs"), filepath.Join(cfg.Out, "logs-"+p.Name))
		}
	}()
	pr.BedStart = time.Since(began).Seconds()
	if !strings.HasPrefix(cgroupRoot, bed.NodeCgroupRoot("")) {
		return nil, fmt.Errorf("cgroup root %s is outside the bed's %s", cgroupRoot, bed.NodeCgroupRoot(""))
	}

	rc, err := clientcmd.BuildConfigFromFlags("", bed.AdminKubeconfig)
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = 500, 1000 // the bench's own client must never be the bottleneck
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	rt, err := cri.Dial(bed.CRIEndpoint(), "")
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	if res.Env.Cores == 0 {
		res.Env = environment(ctx, bed, rt)
	}

	logf("bench: CRI floor, %d pods one after another", cfg.SeqPods)
	if err := testbed.MakeCgroupEverywhere(cgroupRoot, 0); err != nil {
		return nil, err
	}
	err = pr.measureFloors(ctx, cfg, bed, rt)
	if cerr := testbed.RemoveCgroupEverywhere(cgroupRoot); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if p.Footprint {
		window := min(cfg.Idle, clientFloorWindow)
		logf("bench: client-go floor, %v", window)
		if pr.ClientFloor, err = clientFloor(ctx, bed, window); err != nil {
			return nil, err
		}
	}

	agents := []string{"minikubelet", "upstream"}
	for round := 1; round <= cfg.Rounds; round++ {
		for _, agent := range agents {
			r, err := runAgent(ctx, cfg, bed, rc, client, rt, p, agent, round, res)
			if err != nil {
				return nil, err
			}
			pr.Runs = append(pr.Runs, *r)
		}
	}
	pr.Elapsed = time.Since(began).Seconds()
	return pr, nil
}

// clientFloorWindow bounds the client-go floor's window: its RSS is flat once synced.
const clientFloorWindow = 20 * time.Second

// measureFloors runs the CRI floors with no agent: single pods one after another, then
// each batch size at once.
func (pr *ProfileResult) measureFloors(ctx context.Context, cfg config, bed *testbed.Bed, rt *cri.Client) error {
	var err error
	if pr.Floor, err = floor(ctx, bed, rt, cfg.SeqPods, cgroupRoot); err != nil {
		return err
	}
	for _, n := range cfg.Batches {
		logf("bench: CRI floor, batch of %d", n)
		b, err := batchFloor(ctx, bed, rt, n, cgroupRoot)
		if err != nil {
			return err
		}
		pr.BatchFloors = append(pr.BatchFloors, b)
	}
	return nil
}

func short(agent string) string {
	if agent == "upstream" {
		return "up"
	}
	return "mk"
}

// runAgent starts one agent on a fresh node, runs the workloads, and leaves the runtime
// empty and the bench's cgroups removed again.
func runAgent(ctx context.Context, cfg config, bed *testbed.Bed, admin *rest.Config, client kubernetes.Interface, rt *cri.Client, p profile, agent string, round int, res *Results) (run *RunResult, err error) {
	node := fmt.Sprintf("bench-%s-%s-%d", p.Name, short(agent), round)
	start := time.Now()
	logf("bench: %s round %d, %s as node %s", p.Name, round, agent, node)
	if err := testbed.MakeCgroupEverywhere(cgroupRoot, 0); err != nil {
		return nil, err
	}
	var k *testbed.Kubelet
	if agent == "upstream" {
		k, err = bed.StartUpstreamKubeletWith(node, testbed.UpstreamOptions{CgroupRoot: cgroupRoot, MaxPods: cfg.MaxPods})
	} else {
		k, err = bed.StartMinikubelet(node, "--cgroups-per-qos=true", "--cgroup-root="+cgroupRoot, fmt.Sprintf("--max-pods=%d", cfg.MaxPods))
	}
	if err != nil {
		_ = testbed.RemoveCgroupEverywhere(cgroupRoot)
		return nil, fmt.Errorf("start %s: %w", agent, err)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer func() {
		cancelRun()
		if err != nil {
			err = fmt.Errorf("%w\n----- %s log tail\n%s", err, k.Name, k.Tail(60))
		}
		// Between runs: pods gone from the API, agent stopped, runtime empty, no cgroups.
		if derr := deleteAllPods(ctx, client); derr != nil && err == nil {
			err = derr
		}
		_ = k.Stop(15 * time.Second)
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = client.CoreV1().Nodes().Delete(dctx, node, metav1.DeleteOptions{})
		cancel()
		if rerr := removeSandboxes(ctx, rt, false, 2*time.Minute); rerr != nil && err == nil {
			err = fmt.Errorf("emptying the runtime after %s: %w", node, rerr)
		}
		if cerr := testbed.RemoveCgroupEverywhere(cgroupRoot); cerr != nil && err == nil {
			err = fmt.Errorf("after %s: %w", node, cerr)
		}
	}()
	if _, err := bed.WaitNodeReady(ctx, k, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("node %s (%s) not Ready: %w", node, agent, err)
	}
	// The node lifecycle controller lifts the not-ready taint a few seconds after Ready;
	// the scheduler would hold pods back until then.
	if err := waitUntainted(ctx, client, node, time.Minute); err != nil {
		return nil, err
	}
	logf("  %s Ready after %.1fs", node, time.Since(start).Seconds())
	api, err := newKubeletAPI(admin, k.Port)
	if err != nil {
		return nil, err
	}
	r := &agentRun{cfg: cfg, prof: p, round: round, bed: bed, client: client, api: api, rt: rt, k: k,
		prefix: fmt.Sprintf("%s%d", short(agent), round), res: &RunResult{Agent: agent, Node: node, Round: round}, log: logf}
	if agent == "minikubelet" && p.Footprint {
		r.heapPrefix = reportName(res.Date) + "-heap-mk"
	}
	r.tr = newTracker(client, ns, node, r.alive)
	go r.tr.run(runCtx)
	if err := r.run(runCtx); err != nil {
		return nil, err
	}
	if r.idleHeap != "" {
		res.HeapFile = r.idleHeap
	}
	if r.loadedHeap != "" {
		res.LoadedHeapFile = r.loadedHeap
	}
	r.res.Wall = time.Since(start).Seconds()
	logf("  %s done in %.1fs", node, r.res.Wall)
	return r.res, nil
}

// keepLogs copies a failed profile's bed logs (the runtime's, the control plane's, the
// agents') to dst, which the bed's removal would take with it.
func keepLogs(src, dst string) {
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		logf("bench: keeping the bed's logs in %s: %v", dst, err)
		return
	}
	logf("bench: the bed's logs are kept in %s", dst)
}

// waitUntainted waits until the node carries no NoSchedule or NoExecute taint.
func waitUntainted(ctx context.Context, client kubernetes.Interface, node string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err == nil {
			var taints []string
			for _, t := range n.Spec.Taints {
				if t.Effect == v1.TaintEffectNoSchedule || t.Effect == v1.TaintEffectNoExecute {
					taints = append(taints, t.ToString())
				}
			}
			if len(taints) == 0 {
				return nil
			}
			err = fmt.Errorf("taints %s", strings.Join(taints, ", "))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s still not schedulable after %v: %w", node, timeout, err)
		}
		sleepCtx(ctx, 100*time.Millisecond)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// deleteAllPods removes every pod in the namespace from the API at once (grace 0).
func deleteAllPods(ctx context.Context, client kubernetes.Interface) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("delete all pods: %w", err)
	}
	return nil
}

func environment(ctx context.Context, bed *testbed.Bed, rt *cri.Client) Environment {
	e := Environment{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				e.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				e.MemoryGiB = kb / 1024 / 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		e.Kernel = strings.TrimSpace(string(b))
	}
	if v, err := rt.Version(ctx); err == nil {
		e.Containerd = v.RuntimeName + " " + v.RuntimeVersion
	}
	e.Minikubelet = firstLine(exec.Command(bed.MinikubeletBin, "--version").CombinedOutput())
	e.Upstream = firstLine(exec.Command(filepath.Join(bed.ToolsBin, "kubelet"), "--version").CombinedOutput())
	git := exec.Command("git", "describe", "--always", "--dirty")
	git.Dir = testbed.RepoRoot()
	e.SourceCommit = firstLine(git.Output())
	e.CgroupRoot = cgroupRoot
	return e
}

func firstLine(b []byte, err error) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if err != nil && s == "" {
		return "unknown (" + err.Error() + ")"
	}
	return s
}

// reportName is the base name of a day's report files: the date, and the runtime when it
// is not the default one, so that both runtimes' reports of a day stand side by side.
func reportName(date string) string {
	if r := testbed.DefaultRuntime(); r != testbed.RuntimeContainerd {
		return date + "-" + r
	}
	return date
}

// rewriteReport writes the report of the raw results in js (BENCH_REPORT=<file>.json) anew,
// as <file>.md: for a report whose format changed after the run.
func rewriteReport(js string) error {
	b, err := os.ReadFile(js)
	if err != nil {
		return err
	}
	var res Results
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("%s: %w", js, err)
	}
	c := &res.Config // the durations are kept as seconds only
	c.Idle, c.ExitDelayMax = time.Duration(c.IdleSeconds*float64(time.Second)), time.Duration(c.ExitDelayMaxS*float64(time.Second))
	md := strings.TrimSuffix(js, ".json") + ".md"
	if err := os.WriteFile(md, []byte(markdown(&res)), 0o644); err != nil {
		return err
	}
	logf("bench: wrote %s from %s", md, js)
	return nil
}

func writeReport(cfg config, res *Results) error {
	md := markdown(res)
	fmt.Println(md)
	js, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return err
	}
	base := filepath.Join(cfg.Out, reportName(res.Date))
	if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(base+".md", []byte(md), 0o644); err != nil {
		return err
	}
	logf("bench: wrote %s.md and %s.json (%.1f min)", base, base, res.Elapsed/60)
	return nil
}
