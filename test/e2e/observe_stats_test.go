package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	v1 "k8s.io/api/core/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

const (
	mib = 1 << 20
	// holdBytes is what the holder pod keeps in memory (a file on a memory-backed
	// emptyDir: its pages are charged to the container and never reclaimable as cache).
	holdBytes = 100 * mib
	// fillBytes is the file the burner pod's init container writes to its emptyDir.
	fillBytes = 8 * mib
)

// TestObserveStats checks what operators and metrics-server read from the kubelet API:
// /stats/summary (node, runtime filesystems, pods with CPU, memory, network, volumes,
// ephemeral storage), /metrics/resource (parsed as metrics-server parses it) and
// /metrics/cadvisor, against a pod that burns a CPU and one that holds 100 MiB. Values
// are polled until they are sane or a deadline passes: rates need two samples, and
// upstream computes volume usage in the background once per volumeStatsAggPeriod.
func TestObserveStats(t *testing.T) {
	ctx := ctxFor(t, 6*time.Minute)
	k := startKubelet(t, "obs-stats")
	watchNode(ctx, t, k.NodeName, isReady)
	crt, key, err := bed.PKI.Issue("e2e-stats-admin", "e2e-stats-admin", []string{"system:masters"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) string {
		t.Helper()
		code, body := kubeletGet(ctx, t, k, path, crt, key, "")
		if code != 200 {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		return body
	}

	burner := newPod(k.NodeName, "sh", "-c", "while :; do :; done")
	burner.Spec.Containers[0].Name = "burn"
	burner.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	burner.Spec.InitContainers = []v1.Container{{Name: "fill", Image: testbed.BusyboxImage, ImagePullPolicy: v1.PullIfNotPresent,
		Command:      []string{"dd", "if=/dev/zero", "of=/data/f", "bs=1048576", fmt.Sprintf("count=%d", fillBytes/mib)},
		VolumeMounts: []v1.VolumeMount{{Name: "data", MountPath: "/data"}}}}
	burner.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
	holder := newPod(k.NodeName, "sh", "-c", fmt.Sprintf("dd if=/dev/zero of=/mem/hold bs=1048576 count=%d && touch /mem/done && exec sleep 3600", holdBytes/mib))
	holder.Spec.Containers[0].Name = "hold"
	holder.Spec.Volumes = []v1.Volume{{Name: "mem", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}}}}
	holder.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "mem", MountPath: "/mem"}}
	holder.Spec.Containers[0].ReadinessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"test", "-e", "/mem/done"}}},
		PeriodSeconds: 1}
	burner = createPod(ctx, t, burner)
	holder = createPod(ctx, t, holder)
	burnerID := containerID(watchPod(ctx, t, burner, "running", containerRunning("burn")), "burn")
	watchPod(ctx, t, holder, "ready", podReady)

	// The summary, polled until every check passes.
	var sum statsapi.Summary
	var problems []string
	deadline := time.Now().Add(3 * time.Minute)
	for {
		body := get("/stats/summary")
		dump(t, "summary.json", body)
		if os.Getenv("MINIKUBELET_E2E_DUMP") != "" {
			dump(t, "metrics-resource.txt", get("/metrics/resource"))
			dump(t, "metrics-cadvisor.txt", get("/metrics/cadvisor"))
		}
		sum = statsapi.Summary{}
		if err := json.Unmarshal([]byte(body), &sum); err != nil {
			t.Fatalf("/stats/summary: %v\n%s", err, body)
		}
		if problems = checkSummary(&sum, k.NodeName, burner.Name, holder.Name); len(problems) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/stats/summary still wrong after 3m:\n%s", strings.Join(problems, "\n"))
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
	logSummary(t, &sum, burner.Name, holder.Name)

	// only_cpu_and_memory: CPU and memory only (what the eviction manager reads).
	var small statsapi.Summary
	if err := json.Unmarshal([]byte(get("/stats/summary?only_cpu_and_memory=true&unknown=1")), &small); err != nil {
		t.Fatal(err)
	}
	if small.Node.CPU == nil || small.Node.Memory == nil || small.Node.Fs != nil || small.Node.Runtime != nil {
		t.Errorf("only_cpu_and_memory node: cpu %v memory %v fs %v runtime %v", small.Node.CPU != nil, small.Node.Memory != nil, small.Node.Fs, small.Node.Runtime)
	}
	if p := findPod(&small, burner.Name); p == nil || p.CPU == nil || p.Memory == nil || p.Network != nil || len(p.VolumeStats) > 0 || p.EphemeralStorage != nil {
		t.Errorf("only_cpu_and_memory burner pod: %+v", p)
	}

	checkResourceMetrics(t, get("/metrics/resource"), burner.Name, holder.Name)
	checkCadvisorMetrics(t, get("/metrics/cadvisor"), burner.Name, burnerID)

	// Stats and metrics are behind the kubelet API's authentication like everything else.
	for _, path := range []string{"/stats/summary", "/metrics/resource", "/metrics/cadvisor"} {
		if code, _ := kubeletGet(ctx, t, k, path, "", "", ""); code != 401 {
			t.Errorf("%s without credentials: %d, want 401", path, code)
		}
	}
}

// dump keeps a copy of a response, named by agent, in the folder MINIKUBELET_E2E_DUMP
// names (none when unset), to compare what the two agents serve.
func dump(t *testing.T, name, body string) {
	dir := os.Getenv("MINIKUBELET_E2E_DUMP")
	if dir == "" {
		return
	}
	agent := "minikubelet"
	if upstream {
		agent = "upstream"
	}
	_ = os.WriteFile(filepath.Join(dir, agent+"-"+name), []byte(body), 0o644)
}

func findPod(s *statsapi.Summary, name string) *statsapi.PodStats {
	for i := range s.Pods {
		if s.Pods[i].PodRef.Name == name {
			return &s.Pods[i]
		}
	}
	return nil
}

func findContainer(p *statsapi.PodStats, name string) *statsapi.ContainerStats {
	for i := range p.Containers {
		if p.Containers[i].Name == name {
			return &p.Containers[i]
		}
	}
	return nil
}

func val(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

// checkSummary returns what is missing or out of range in a summary.
func checkSummary(s *statsapi.Summary, node, burner, holder string) []string {
	var bad []string
	need := func(ok bool, f string, a ...any) {
		if !ok {
			bad = append(bad, fmt.Sprintf(f, a...))
		}
	}
	n := s.Node
	need(n.NodeName == node, "node name %q", n.NodeName)
	need(n.CPU != nil && val(n.CPU.UsageCoreNanoSeconds) > 0 && val(n.CPU.UsageNanoCores) > 0, "node cpu %+v", n.CPU)
	need(n.Memory != nil && val(n.Memory.WorkingSetBytes) > 0 && val(n.Memory.AvailableBytes) > 0 && n.Memory.RSSBytes != nil &&
		n.Memory.PageFaults != nil && val(n.Memory.UsageBytes) > 0, "node memory %+v", n.Memory)
	need(n.Network != nil && len(n.Network.Interfaces) > 0, "node network %+v", n.Network)
	need(fsFull(n.Fs), "node fs %+v", n.Fs)
	need(n.Runtime != nil && fsFull(n.Runtime.ImageFs) && fsFull(n.Runtime.ContainerFs), "runtime fs %+v", n.Runtime)
	need(n.Rlimit != nil && n.Rlimit.MaxPID != nil && *n.Rlimit.MaxPID > 0 &&
		n.Rlimit.NumOfRunningProcesses != nil && *n.Rlimit.NumOfRunningProcesses > 0, "rlimit %+v", n.Rlimit)
	// Upstream finds its own cgroup for "kubelet" only in a periodic task (every 5 min).
	sys := []string{statsapi.SystemContainerPods}
	if !upstream {
		sys = append(sys, statsapi.SystemContainerKubelet, statsapi.SystemContainerRuntime)
	}
	for _, name := range sys {
		need(slices.ContainsFunc(n.SystemContainers, func(c statsapi.ContainerStats) bool {
			return c.Name == name && c.CPU != nil && c.Memory != nil && val(c.Memory.WorkingSetBytes) > 0
		}), "no %s system container with cpu and memory", name)
	}

	b, h := findPod(s, burner), findPod(s, holder)
	if b == nil || h == nil {
		return append(bad, fmt.Sprintf("pods missing: burner %v holder %v", b != nil, h != nil))
	}
	// The burner spins one shell loop: close to a core on this 2-core machine.
	need(b.CPU != nil && val(b.CPU.UsageNanoCores) > 5e8, "burner pod cpu %+v", b.CPU)
	bc := findContainer(b, "burn")
	need(bc != nil && bc.CPU != nil && val(bc.CPU.UsageNanoCores) > 5e8, "burner container cpu")
	// The holder's 100 MiB file on tmpfs is its working set, plus a shell and sleep.
	near := func(ws uint64) bool { return math.Abs(float64(ws)-holdBytes) <= 0.1*holdBytes }
	need(h.Memory != nil && near(val(h.Memory.WorkingSetBytes)), "holder pod memory %+v", h.Memory)
	hc := findContainer(h, "hold")
	need(hc != nil && hc.Memory != nil && near(val(hc.Memory.WorkingSetBytes)) && hc.Memory.RSSBytes != nil &&
		hc.Memory.PageFaults != nil, "holder container memory")
	for _, c := range []*statsapi.ContainerStats{bc, hc} {
		if c == nil {
			continue
		}
		need(!c.StartTime.IsZero(), "container %s start time", c.Name)
		need(c.Rootfs != nil && c.Rootfs.UsedBytes != nil && val(c.Rootfs.CapacityBytes) > 0, "container %s rootfs %+v", c.Name, c.Rootfs)
		need(c.Logs != nil && c.Logs.UsedBytes != nil && val(c.Logs.CapacityBytes) > 0, "container %s logs %+v", c.Name, c.Logs)
		need(c.Swap != nil, "container %s swap", c.Name)
	}
	for _, p := range []*statsapi.PodStats{b, h} {
		// Upstream has no pod network here: its sandboxes have no cgroup in this bed
		// (cgroupsPerQOS off), so containerd refuses their stats and its cAdvisor does not
		// know the bed's containerd (docs/differences.md).
		need(upstream || p.Network != nil && p.Network.Name == "eth0" && p.Network.RxBytes != nil && p.Network.TxBytes != nil &&
			len(p.Network.Interfaces) > 0, "pod %s network %+v", p.PodRef.Name, p.Network)
		need(!p.StartTime.IsZero(), "pod %s start time", p.PodRef.Name)
		need(p.Swap != nil && p.Swap.SwapUsageBytes != nil, "pod %s swap", p.PodRef.Name)
	}
	var data *statsapi.VolumeStats
	for i := range b.VolumeStats {
		if b.VolumeStats[i].Name == "data" {
			data = &b.VolumeStats[i]
		}
	}
	// du counts blocks: the file's 8 MiB plus the directory's few blocks.
	need(data != nil && val(data.UsedBytes) >= fillBytes && val(data.UsedBytes) < fillBytes+mib && val(data.CapacityBytes) > 0 &&
		val(data.Inodes) > 0 && val(data.InodesUsed) >= 2 && data.PVCRef == nil, "burner emptyDir volume stats %+v", data)
	need(b.EphemeralStorage != nil && val(b.EphemeralStorage.UsedBytes) >= fillBytes, "burner ephemeral storage %+v", b.EphemeralStorage)
	return bad
}

func fsFull(f *statsapi.FsStats) bool {
	return f != nil && val(f.CapacityBytes) > 0 && val(f.AvailableBytes) > 0 && val(f.UsedBytes) > 0 && val(f.Inodes) > 0 && f.InodesFree != nil
}

func logSummary(t *testing.T, s *statsapi.Summary, burner, holder string) {
	b, h := findPod(s, burner), findPod(s, holder)
	t.Logf("node: cpu %.2f cores, working set %d MiB; burner %.2f cores; holder working set %.1f MiB; burner emptyDir %d bytes",
		float64(val(s.Node.CPU.UsageNanoCores))/1e9, val(s.Node.Memory.WorkingSetBytes)/mib, float64(val(b.CPU.UsageNanoCores))/1e9,
		float64(val(h.Memory.WorkingSetBytes))/mib, val(b.VolumeStats[0].UsedBytes))
}

func parseMetrics(t *testing.T, path, body string) map[string]*dto.MetricFamily {
	t.Helper()
	dump(t, strings.ReplaceAll(strings.TrimPrefix(path, "/"), "/", "-")+".txt", body)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return fams
}

// series returns the family's metrics whose labels include want.
func series(f *dto.MetricFamily, want map[string]string) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range want {
			ok = ok && got[k] == v
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

func labelNames(m *dto.Metric) []string {
	var out []string
	for _, l := range m.GetLabel() {
		out = append(out, l.GetName())
	}
	slices.Sort(out)
	return out
}

// checkResourceMetrics: every upstream series metrics-server reads, with upstream's help
// text and stability, sample timestamps, and the pods' labels.
func checkResourceMetrics(t *testing.T, body, burner, holder string) {
	fams := parseMetrics(t, "/metrics/resource", body)
	helps := map[string]string{
		"node_cpu_usage_seconds_total":       "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
		"node_memory_working_set_bytes":      "[STABLE] Current working set of the node in bytes",
		"container_cpu_usage_seconds_total":  "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
		"container_memory_working_set_bytes": "[STABLE] Current working set of the container in bytes",
		"container_start_time_seconds":       "[STABLE] Start time of the container since unix epoch in seconds",
		"pod_cpu_usage_seconds_total":        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
		"pod_memory_working_set_bytes":       "[STABLE] Current working set of the pod in bytes",
		"resource_scrape_error":              "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
	}
	for name, help := range helps {
		if f := fams[name]; f == nil || f.GetHelp() != help {
			t.Errorf("/metrics/resource %s: help %q, want %q", name, f.GetHelp(), help)
		}
	}
	for _, name := range []string{"node_swap_usage_bytes", "container_swap_usage_bytes", "pod_swap_usage_bytes"} {
		if f := fams[name]; f == nil || !strings.HasPrefix(f.GetHelp(), "[ALPHA] ") {
			t.Errorf("/metrics/resource %s: %v", name, f)
		}
	}
	if m := fams["resource_scrape_error"].GetMetric(); len(m) != 1 || m[0].GetGauge().GetValue() != 0 {
		t.Errorf("resource_scrape_error %v", m)
	}
	for _, name := range []string{"node_cpu_usage_seconds_total", "node_memory_working_set_bytes"} {
		if m := fams[name].GetMetric(); len(m) != 1 || m[0].GetTimestampMs() == 0 {
			t.Errorf("%s: %v (want one sample with a timestamp)", name, m)
		}
	}
	for _, pod := range []string{burner, holder} {
		ct := map[string]string{"pod": pod, "namespace": "default", "container": map[string]string{burner: "burn", holder: "hold"}[pod]}
		for _, name := range []string{"container_cpu_usage_seconds_total", "container_memory_working_set_bytes"} {
			m := series(fams[name], ct)
			if len(m) != 1 || m[0].GetTimestampMs() == 0 || !slices.Equal(labelNames(m[0]), []string{"container", "namespace", "pod"}) {
				t.Errorf("%s for %v: %v", name, ct, m)
			}
		}
		if m := series(fams["container_start_time_seconds"], ct); len(m) != 1 || m[0].GetGauge().GetValue() < float64(time.Now().Add(-10*time.Minute).Unix()) {
			t.Errorf("container_start_time_seconds for %v: %v", ct, m)
		}
		for _, name := range []string{"pod_cpu_usage_seconds_total", "pod_memory_working_set_bytes"} {
			m := series(fams[name], map[string]string{"pod": pod, "namespace": "default"})
			if len(m) != 1 || m[0].GetTimestampMs() == 0 || !slices.Equal(labelNames(m[0]), []string{"namespace", "pod"}) {
				t.Errorf("%s for %s: %v", name, pod, m)
			}
		}
	}
	if m := series(fams["container_cpu_usage_seconds_total"], map[string]string{"pod": burner, "container": "burn"}); len(m) == 1 && m[0].GetCounter().GetValue() <= 0 {
		t.Errorf("burner's cpu counter %v", m[0])
	}
	if m := series(fams["container_memory_working_set_bytes"], map[string]string{"pod": holder, "container": "hold"}); len(m) == 1 && m[0].GetGauge().GetValue() < 0.9*holdBytes {
		t.Errorf("holder's working set %v", m[0])
	}
}

// checkCadvisorMetrics: the cAdvisor series dashboards use, with cAdvisor's labels: for
// the burner's container (found by its runtime ID in the id label, a cgroup path) and
// the node's root cgroup. Pod and container labels and pods' network: minikubelet only
// (upstream's cAdvisor does not know the bed's containerd, see docs/differences.md).
func checkCadvisorMetrics(t *testing.T, body, burner, burnerID string) {
	fams := parseMetrics(t, "/metrics/cadvisor", body)
	byID := func(name string, suffix string) []*dto.Metric {
		var out []*dto.Metric
		for _, m := range fams[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "id" && (l.GetValue() == suffix || strings.HasSuffix(l.GetValue(), "/"+suffix)) {
					out = append(out, m)
				}
			}
		}
		return out
	}
	check := func(name, id string, want map[string]string, extra ...string) {
		t.Helper()
		m := byID(name, id)
		if len(m) == 0 {
			t.Errorf("/metrics/cadvisor has no %s for id %s", name, id)
			return
		}
		if got, want := labelNames(m[0]), append([]string{"container", "id", "image", "name", "namespace", "pod"}, extra...); !slices.Equal(got, sorted(want)) {
			t.Errorf("%s labels %v, want %v", name, got, sorted(want))
		}
		if len(series(&dto.MetricFamily{Metric: m}, want)) == 0 {
			t.Errorf("%s for id %s: no series with %v", name, id, want)
		}
	}
	ct := map[string]string{}
	if !upstream {
		ct = map[string]string{"pod": burner, "namespace": "default", "container": "burn"}
	}
	for _, name := range []string{"container_memory_working_set_bytes", "container_memory_rss", "container_memory_usage_bytes",
		"container_spec_cpu_shares", "container_spec_memory_limit_bytes", "container_last_seen", "container_start_time_seconds"} {
		check(name, burnerID, ct)
	}
	check("container_cpu_usage_seconds_total", burnerID, ct, "cpu")
	check("container_network_receive_bytes_total", "/", nil, "interface")
	check("container_network_transmit_bytes_total", "/", nil, "interface")
	check("container_fs_usage_bytes", "/", nil, "device")
	if upstream {
		return
	}
	check("container_fs_usage_bytes", burnerID, ct, "device")
	for _, name := range []string{"container_network_receive_bytes_total", "container_network_transmit_bytes_total"} {
		if m := series(fams[name], map[string]string{"pod": burner, "namespace": "default", "interface": "eth0"}); len(m) == 0 {
			t.Errorf("/metrics/cadvisor has no %s for the burner's eth0", name)
		}
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// containerID is a container's runtime ID from the pod's status.
func containerID(p *v1.Pod, name string) string {
	cs := containerStatus(p, name)
	if cs == nil {
		return ""
	}
	_, id, _ := strings.Cut(cs.ContainerID, "://")
	return id
}
