// Command bench runs the same workloads against minikubelet and the pinned upstream kubelet
// (v1.37.2) on one test bed, alternating the two agents, and writes a Markdown report and
// the raw samples to bench/results/<date>.{md,json}. `make bench` runs it (as root, like
// the e2e tests).
//
// Each agent run gets a fresh node name; between runs every pod is deleted, the agent is
// stopped and the runtime is emptied through CRI. Per run:
//
//  1. pods created one after another, each waited for until Ready: create -> Running and
//     create -> Ready, timestamps taken by a pod watch as the events arrive;
//  2. a batch created at once: time until all Ready, pods/s;
//  3. that batch deleted with grace 0: delete call -> DELETED event, and -> no sandbox of
//     the batch left ready in the runtime;
//  4. status write-back: test-app pods asked to exit (GET /exit?code=3): HTTP response ->
//     the watch shows the container terminated;
//  5. crash loop (sh -c 'exit 1', restartPolicy Always, alongside 4): when restarts 1-3
//     were seen;
//  6. the agent process's RSS and CPU time with no pods and with many sleeping pods.
//
// Once, with no agent running: 7. the floor, sandbox + container start straight through CRI.
//
// Environment: BENCH_ROUNDS (3), BENCH_IDLE (60s), BENCH_PODS (50), BENCH_SEQ (20),
// BENCH_BATCH (30), BENCH_EXITS (10), BENCH_FLOOR (10), BENCH_OUT (bench/results),
// BENCH_TIMEOUT (29m, the whole run).
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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/test/testbed"
)

type config struct {
	Rounds        int           `json:"rounds"`
	Idle          time.Duration `json:"-"`
	IdleSeconds   float64       `json:"idle_window_s"`
	FootprintPods int           `json:"footprint_pods"`
	SeqPods       int           `json:"sequential_pods"`
	BatchPods     int           `json:"batch_pods"`
	ExitSamples   int           `json:"exit_samples"`
	FloorSamples  int           `json:"floor_samples"`
	Out           string        `json:"-"`
	Timeout       time.Duration `json:"-"`
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

func loadConfig() config {
	c := config{
		Rounds:        envInt("BENCH_ROUNDS", 3),
		Idle:          envDuration("BENCH_IDLE", 60*time.Second),
		FootprintPods: envInt("BENCH_PODS", 50),
		SeqPods:       envInt("BENCH_SEQ", 20),
		BatchPods:     envInt("BENCH_BATCH", 30),
		ExitSamples:   envInt("BENCH_EXITS", 10),
		FloorSamples:  envInt("BENCH_FLOOR", 10),
		Out:           envOr("BENCH_OUT", filepath.Join(testbed.RepoRoot(), "bench", "results")),
		Timeout:       envDuration("BENCH_TIMEOUT", 29*time.Minute),
	}
	c.IdleSeconds = c.Idle.Seconds()
	return c
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

// Results is everything the JSON file holds.
type Results struct {
	Date    string        `json:"date"`
	Env     Environment   `json:"environment"`
	Config  config        `json:"config"`
	Floor   []FloorSample `json:"cri_floor"`
	Runs    []RunResult   `json:"runs"`
	Elapsed float64       `json:"elapsed_s"`
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
}

func main() {
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
	logf("bench: %d rounds per agent, idle window %v, %d footprint pods", cfg.Rounds, cfg.Idle, cfg.FootprintPods)
	bed, err := testbed.Start(testbed.Options{Name: "bench", Log: logf})
	if err != nil {
		return fmt.Errorf("start the test bed: %w", err)
	}
	defer bed.Stop()

	rc, err := clientcmd.BuildConfigFromFlags("", bed.AdminKubeconfig)
	if err != nil {
		return err
	}
	rc.QPS, rc.Burst = 500, 1000 // the bench's own client must never be the bottleneck
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	rt, err := cri.Dial(bed.CRIEndpoint(), "")
	if err != nil {
		return err
	}
	defer rt.Close()
	res.Env = environment(ctx, bed, rt)

	logf("bench: CRI floor, %d samples", cfg.FloorSamples)
	if res.Floor, err = floor(ctx, bed, rt, cfg.FloorSamples); err != nil {
		return err
	}

	agents := []string{"minikubelet", "upstream"}
	for round := 1; round <= cfg.Rounds; round++ {
		for _, agent := range agents {
			r, err := runAgent(ctx, cfg, bed, client, rt, agent, round)
			if err != nil {
				return err
			}
			res.Runs = append(res.Runs, *r)
		}
	}
	res.Elapsed = time.Since(began).Seconds()
	return writeReport(cfg, res)
}

func short(agent string) string {
	if agent == "upstream" {
		return "up"
	}
	return "mk"
}

// runAgent starts one agent on a fresh node, runs the workloads, and leaves the runtime
// empty again.
func runAgent(ctx context.Context, cfg config, bed *testbed.Bed, client kubernetes.Interface, rt *cri.Client, agent string, round int) (res *RunResult, err error) {
	node := fmt.Sprintf("bench-%s-%d", short(agent), round)
	start := time.Now()
	logf("bench: round %d, %s as node %s", round, agent, node)
	var k *testbed.Kubelet
	if agent == "upstream" {
		k, err = bed.StartUpstreamKubelet(node)
	} else {
		k, err = bed.StartMinikubelet(node)
	}
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", agent, err)
	}
	runCtx, cancelRun := context.WithCancel(ctx)
	defer func() {
		cancelRun()
		if err != nil {
			err = fmt.Errorf("%w\n----- %s log tail\n%s", err, k.Name, k.Tail(60))
		}
		// Between runs: pods gone from the API, agent stopped, runtime empty.
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
	}()
	if _, err := bed.WaitNodeReady(ctx, k, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("node %s (%s) not Ready: %w", node, agent, err)
	}
	logf("  %s Ready after %.1fs", node, time.Since(start).Seconds())
	r := &agentRun{cfg: cfg, bed: bed, client: client, rt: rt, k: k, prefix: fmt.Sprintf("%s%d", short(agent), round),
		res: &RunResult{Agent: agent, Node: node}, log: logf}
	r.tr = newTracker(client, ns, node, r.alive)
	go r.tr.run(runCtx)
	if err := r.run(runCtx); err != nil {
		return nil, err
	}
	r.res.Wall = time.Since(start).Seconds()
	logf("  %s done in %.1fs", node, r.res.Wall)
	return r.res, nil
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

func writeReport(cfg config, res *Results) error {
	md := markdown(res)
	fmt.Println(md)
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return err
	}
	base := filepath.Join(cfg.Out, res.Date)
	if err := os.WriteFile(base+".json", append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(base+".md", []byte(md), 0o644); err != nil {
		return err
	}
	logf("bench: wrote %s.md and %s.json (%.1f min)", base, base, res.Elapsed/60)
	return nil
}
