package stats

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// cAdvisor's label names, as the kubelet sets them for every container series.
var cadvisorLabels = []string{"container", "id", "image", "name", "namespace", "pod"}

func cadvisorDesc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string{}, cadvisorLabels...), extra...), nil)
}

// The series dashboards read from /metrics/cadvisor, with cAdvisor's names and help.
var (
	cadCPU        = cadvisorDesc("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", "cpu")
	cadMemUsage   = cadvisorDesc("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed")
	cadMemWS      = cadvisorDesc("container_memory_working_set_bytes", "Current working set in bytes.")
	cadMemRSS     = cadvisorDesc("container_memory_rss", "Size of RSS in bytes.")
	cadNetRx      = cadvisorDesc("container_network_receive_bytes_total", "Cumulative count of bytes received", "interface")
	cadNetTx      = cadvisorDesc("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", "interface")
	cadNetRxErr   = cadvisorDesc("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", "interface")
	cadNetTxErr   = cadvisorDesc("container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", "interface")
	cadFsUsage    = cadvisorDesc("container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", "device")
	cadFsLimit    = cadvisorDesc("container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", "device")
	cadSpecShares = cadvisorDesc("container_spec_cpu_shares", "CPU share of the container.")
	cadSpecMemLim = cadvisorDesc("container_spec_memory_limit_bytes", "Memory limit for the container.")
	cadLastSeen   = cadvisorDesc("container_last_seen", "Last time a container was seen by the exporter")
	cadStartTime  = cadvisorDesc("container_start_time_seconds", "Start time of the container since unix epoch in seconds.")
	cadScrapeErr  = prometheus.NewDesc("container_scrape_error", "1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
)

// CadvisorMetrics serves /metrics/cadvisor: the node's root cgroup ("/"), the system
// containers, each pod's cgroup and network, and each container, measured at each scrape.
func (p *Provider) CadvisorMetrics() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&cadvisorCollector{p: p})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

type cadvisorCollector struct{ p *Provider }

func (c *cadvisorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cadCPU, cadMemUsage, cadMemWS, cadMemRSS, cadNetRx, cadNetTx, cadNetRxErr, cadNetTxErr,
		cadFsUsage, cadFsLimit, cadSpecShares, cadSpecMemLim, cadLastSeen, cadStartTime, cadScrapeErr} {
		ch <- d
	}
}

// row is one cAdvisor container (a cgroup) and its label values.
type row struct {
	ch     chan<- prometheus.Metric
	labels []string // cadvisorLabels' values
}

func (r row) emit(d *prometheus.Desc, t prometheus.ValueType, v float64, at time.Time, extra ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, append(append([]string{}, r.labels...), extra...)...)
	if err != nil {
		return
	}
	if !at.IsZero() {
		m = prometheus.NewMetricWithTimestamp(at, m)
	}
	r.ch <- m
}

func (r row) cpuMem(cpu *statsapi.CPUStats, mem *statsapi.MemoryStats) {
	if cpu != nil && cpu.UsageCoreNanoSeconds != nil {
		r.emit(cadCPU, prometheus.CounterValue, seconds(*cpu.UsageCoreNanoSeconds), cpu.Time.Time, "total")
	}
	if mem == nil {
		return
	}
	for _, m := range []struct {
		d *prometheus.Desc
		v *uint64
	}{{cadMemUsage, mem.UsageBytes}, {cadMemWS, mem.WorkingSetBytes}, {cadMemRSS, mem.RSSBytes}} {
		if m.v != nil {
			r.emit(m.d, prometheus.GaugeValue, float64(*m.v), mem.Time.Time)
		}
	}
}

func (r row) network(n *statsapi.NetworkStats) {
	if n == nil {
		return
	}
	for _, i := range n.Interfaces {
		for _, m := range []struct {
			d *prometheus.Desc
			v *uint64
		}{{cadNetRx, i.RxBytes}, {cadNetTx, i.TxBytes}, {cadNetRxErr, i.RxErrors}, {cadNetTxErr, i.TxErrors}} {
			if m.v != nil {
				r.emit(m.d, prometheus.CounterValue, float64(*m.v), n.Time.Time, i.Name)
			}
		}
	}
}

func (r row) seen(now time.Time, start time.Time) {
	r.emit(cadLastSeen, prometheus.GaugeValue, float64(now.Unix()), time.Time{})
	if !start.IsZero() {
		r.emit(cadStartTime, prometheus.GaugeValue, float64(start.UnixNano())/1e9, time.Time{})
	}
}

func (c *cadvisorCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	sum, r, err := c.p.summary(ctx, true)
	if err != nil {
		klog.Background().Error(err, "Error measuring for the cAdvisor metrics endpoint")
		ch <- prometheus.MustNewConstMetric(cadScrapeErr, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(cadScrapeErr, prometheus.GaugeValue, 0)
	n := sum.Node
	root := row{ch, []string{"", "/", "", "", "", ""}}
	root.cpuMem(n.CPU, n.Memory)
	root.network(n.Network)
	root.seen(r.now, n.StartTime.Time)
	if n.Fs != nil && n.Fs.UsedBytes != nil {
		dev := mountSource(c.p.cfg.RootDir)
		root.emit(cadFsUsage, prometheus.GaugeValue, float64(*n.Fs.UsedBytes), n.Fs.Time.Time, dev)
		root.emit(cadFsLimit, prometheus.GaugeValue, float64(val(n.Fs.CapacityBytes)), n.Fs.Time.Time, dev)
	}
	cgroups := map[string]cgroupRef{
		statsapi.SystemContainerKubelet: c.p.kubeletCgroup(), statsapi.SystemContainerRuntime: c.p.runtimeCgroup(ctx, r.now),
		statsapi.SystemContainerPods: c.p.podsCgroup()}
	for _, sc := range n.SystemContainers {
		// cAdvisor names a cgroup by its path; the memory hierarchy's here.
		if id := cgroups[sc.Name].mem; id != "" && id != "/" {
			sr := row{ch, []string{"", id, "", "", "", ""}}
			sr.cpuMem(sc.CPU, sc.Memory)
			sr.seen(r.now, sc.StartTime.Time)
		}
	}
	devs := map[string]string{}
	for i, pr := range r.pods {
		c.collectPod(ch, pr, &sum.Pods[i], r.now, devs)
	}
}

// collectPod: the pod's cgroup (with QoS cgroups), its sandbox's network, and its
// containers, with cAdvisor's ids (the cgroup paths containerd gives them).
func (c *cadvisorCollector) collectPod(ch chan<- prometheus.Metric, pr *podRound, ps *statsapi.PodStats, now time.Time, devs map[string]string) {
	parent := c.p.podCgroup(pr.pod)
	if parent != "" {
		podRow := row{ch, []string{"", parent, "", "", pr.ns, pr.name}}
		podRow.cpuMem(ps.CPU, ps.Memory)
		podRow.seen(now, pr.start)
	}
	if pr.sandboxID != "" {
		sb := row{ch, []string{"", c.p.containerCgroup(parent, pr.sandboxID), "", pr.sandboxID, pr.ns, pr.name}}
		sb.network(ps.Network)
	}
	for i, ct := range pr.containers {
		cs := &ps.Containers[i]
		id := ct.stats.GetAttributes().GetId()
		cr := row{ch, []string{ct.name, c.p.containerCgroup(parent, id), ct.image, id, pr.ns, pr.name}}
		cr.cpuMem(cs.CPU, cs.Memory)
		cr.seen(now, ct.created)
		if fs := cs.Rootfs; fs != nil && fs.UsedBytes != nil {
			mp := ct.stats.GetWritableLayer().GetFsId().GetMountpoint()
			if _, ok := devs[mp]; !ok {
				devs[mp] = mountSource(mp)
			}
			cr.emit(cadFsUsage, prometheus.GaugeValue, float64(*fs.UsedBytes), fs.Time.Time, devs[mp])
			cr.emit(cadFsLimit, prometheus.GaugeValue, float64(val(fs.CapacityBytes)), fs.Time.Time, devs[mp])
		}
		if spec := specContainer(pr.pod, ct.name); spec != nil {
			cr.emit(cadSpecShares, prometheus.GaugeValue, float64(cpuShares(spec)), time.Time{})
			cr.emit(cadSpecMemLim, prometheus.GaugeValue, float64(spec.Resources.Limits.Memory().Value()), time.Time{})
		}
	}
}

// podCgroup is the pod's cgroup as the runtime was told it ("" without QoS cgroups).
func (p *Provider) podCgroup(pod *v1.Pod) string {
	if pod == nil || !p.cfg.CgroupsPerQOS {
		return ""
	}
	return cri.PodCgroupParent(p.cfg.CgroupDriver, p.cfg.CgroupRoot, pod)
}

// containerCgroup is where the runtime puts a container (or sandbox): containerd under
// the pod's cgroup (a cri-containerd scope with systemd), else in its own namespace's
// cgroup; CRI-O in crio-<id> (a crio-<id>.scope with systemd) under the pod's cgroup,
// else under /crio (system.slice with systemd), as its cgroup managers name them.
func (p *Provider) containerCgroup(parent, id string) string {
	if p.cfg.RuntimeName == "cri-o" {
		if p.cfg.CgroupDriver == cri.SystemdDriver {
			if parent == "" {
				parent = "/system.slice"
			}
			return parent + "/crio-" + id + ".scope"
		}
		if parent == "" {
			parent = "/crio"
		}
		return parent + "/crio-" + id
	}
	switch {
	case parent == "":
		return "/k8s.io/" + id
	case p.cfg.CgroupDriver == cri.SystemdDriver:
		return parent + "/cri-containerd-" + id + ".scope"
	}
	return parent + "/" + id
}

func specContainer(pod *v1.Pod, name string) *v1.Container {
	if pod == nil {
		return nil
	}
	for _, list := range [][]v1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// cpuShares is the container's cpu.shares as the kubelet sets it from its CPU request
// (upstream's MilliCPUToShares: 2 at least).
func cpuShares(c *v1.Container) int64 {
	req := c.Resources.Requests.Cpu().MilliValue()
	if req == 0 {
		if lim := c.Resources.Limits.Cpu().MilliValue(); lim > 0 {
			req = lim // the API server defaults the request to the limit
		}
	}
	shares := req * 1024 / 1000
	if shares < 2 {
		shares = 2
	}
	return shares
}

// mountSource is the device of the filesystem that holds path (from
// /proc/self/mountinfo: the mount with the longest prefix of path), or "".
func mountSource(path string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	path = filepath.Clean(path)
	best, src := -1, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			continue
		}
		mp := fields[4]
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > best {
			best, src = len(mp), fields[sep+2]
		}
	}
	return src
}

func val(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}
