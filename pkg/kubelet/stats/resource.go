package stats

import (
	"context"
	"net/http"
	"time"

	"k8s.io/component-base/metrics"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Upstream's /metrics/resource series: names, help, labels and stability as the v1.37
// kubelet declares them (component-base adds the [STABLE]/[ALPHA] to the help). Its
// deprecated scrape_error (deprecated in 1.29) is hidden by v1.37 and left out here.
var (
	nodeCPUUsageDesc = metrics.NewDesc("node_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the node in core-seconds", nil, nil, metrics.STABLE, "")
	nodeMemoryUsageDesc = metrics.NewDesc("node_memory_working_set_bytes",
		"Current working set of the node in bytes", nil, nil, metrics.STABLE, "")
	nodeSwapUsageDesc = metrics.NewDesc("node_swap_usage_bytes",
		"Current swap usage of the node in bytes. Reported only on non-windows systems", nil, nil, metrics.ALPHA, "")
	containerCPUUsageDesc = metrics.NewDesc("container_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the container in core-seconds", containerLabels, nil, metrics.STABLE, "")
	containerMemoryUsageDesc = metrics.NewDesc("container_memory_working_set_bytes",
		"Current working set of the container in bytes", containerLabels, nil, metrics.STABLE, "")
	containerSwapUsageDesc = metrics.NewDesc("container_swap_usage_bytes",
		"Current amount of the container swap usage in bytes. Reported only on non-windows systems", containerLabels, nil, metrics.ALPHA, "")
	containerSwapLimitDesc = metrics.NewDesc("container_swap_limit_bytes",
		"Current amount of the container swap limit in bytes. Reported only on non-windows systems", containerLabels, nil, metrics.ALPHA, "")
	podCPUUsageDesc = metrics.NewDesc("pod_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the pod in core-seconds", podLabels, nil, metrics.STABLE, "")
	podMemoryUsageDesc = metrics.NewDesc("pod_memory_working_set_bytes",
		"Current working set of the pod in bytes", podLabels, nil, metrics.STABLE, "")
	podSwapUsageDesc = metrics.NewDesc("pod_swap_usage_bytes",
		"Current amount of the pod swap usage in bytes. Reported only on non-windows systems", podLabels, nil, metrics.ALPHA, "")
	resourceScrapeErrorDesc = metrics.NewDesc("resource_scrape_error",
		"1 if there was an error while getting container metrics, 0 otherwise", nil, nil, metrics.STABLE, "")
	containerStartTimeDesc = metrics.NewDesc("container_start_time_seconds",
		"Start time of the container since unix epoch in seconds", containerLabels, nil, metrics.STABLE, "")

	containerLabels = []string{"container", "pod", "namespace"}
	podLabels       = []string{"pod", "namespace"}
)

// ResourceMetrics serves /metrics/resource as upstream does, from a CPU-and-memory
// summary measured at each scrape: the samples carry the time they were measured, and
// a failed measurement gives resource_scrape_error 1 and no samples.
func (p *Provider) ResourceMetrics() http.Handler {
	reg := metrics.NewKubeRegistry()
	reg.CustomMustRegister(&resourceCollector{p: p})
	return metrics.HandlerFor(reg, metrics.HandlerOpts{ErrorHandling: metrics.ContinueOnError})
}

type resourceCollector struct {
	metrics.BaseStableCollector
	p *Provider
}

func (c *resourceCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	for _, d := range []*metrics.Desc{nodeCPUUsageDesc, nodeMemoryUsageDesc, nodeSwapUsageDesc, containerStartTimeDesc,
		containerCPUUsageDesc, containerMemoryUsageDesc, containerSwapUsageDesc, containerSwapLimitDesc,
		podCPUUsageDesc, podMemoryUsageDesc, podSwapUsageDesc, resourceScrapeErrorDesc} {
		ch <- d
	}
}

// scrapeTimeout bounds one scrape's measurement (component-base collectors get no
// context; metrics-server's own scrape timeout is 10 s).
const scrapeTimeout = 10 * time.Second

func (c *resourceCollector) CollectWithStability(ch chan<- metrics.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	s, err := c.p.Summary(ctx, true)
	if err != nil {
		klog.Background().Error(err, "Error getting summary for resourceMetric prometheus endpoint")
		ch <- metrics.NewLazyConstMetric(resourceScrapeErrorDesc, metrics.GaugeValue, 1)
		return
	}
	ch <- metrics.NewLazyConstMetric(resourceScrapeErrorDesc, metrics.GaugeValue, 0)
	n := s.Node
	if n.CPU != nil && n.CPU.UsageCoreNanoSeconds != nil {
		ch <- stamped(n.CPU.Time.Time, nodeCPUUsageDesc, metrics.CounterValue, seconds(*n.CPU.UsageCoreNanoSeconds))
	}
	if n.Memory != nil && n.Memory.WorkingSetBytes != nil {
		ch <- stamped(n.Memory.Time.Time, nodeMemoryUsageDesc, metrics.GaugeValue, float64(*n.Memory.WorkingSetBytes))
	}
	if n.Swap != nil && n.Swap.SwapUsageBytes != nil {
		ch <- stamped(n.Swap.Time.Time, nodeSwapUsageDesc, metrics.GaugeValue, float64(*n.Swap.SwapUsageBytes))
	}
	for _, pod := range s.Pods {
		for _, ct := range pod.Containers {
			collectContainer(ch, pod.PodRef, ct)
		}
		name, ns := pod.PodRef.Name, pod.PodRef.Namespace
		if pod.CPU != nil && pod.CPU.UsageCoreNanoSeconds != nil {
			ch <- stamped(pod.CPU.Time.Time, podCPUUsageDesc, metrics.CounterValue, seconds(*pod.CPU.UsageCoreNanoSeconds), name, ns)
		}
		if pod.Memory != nil && pod.Memory.WorkingSetBytes != nil {
			ch <- stamped(pod.Memory.Time.Time, podMemoryUsageDesc, metrics.GaugeValue, float64(*pod.Memory.WorkingSetBytes), name, ns)
		}
		if pod.Swap != nil && pod.Swap.SwapUsageBytes != nil {
			ch <- stamped(pod.Swap.Time.Time, podSwapUsageDesc, metrics.GaugeValue, float64(*pod.Swap.SwapUsageBytes), name, ns)
		}
	}
}

func collectContainer(ch chan<- metrics.Metric, pod statsapi.PodReference, ct statsapi.ContainerStats) {
	lv := []string{ct.Name, pod.Name, pod.Namespace}
	if ct.StartTime.Unix() > 0 {
		ch <- metrics.NewLazyConstMetric(containerStartTimeDesc, metrics.GaugeValue, float64(ct.StartTime.UnixNano())/1e9, lv...)
	}
	if ct.CPU != nil && ct.CPU.UsageCoreNanoSeconds != nil {
		ch <- stamped(ct.CPU.Time.Time, containerCPUUsageDesc, metrics.CounterValue, seconds(*ct.CPU.UsageCoreNanoSeconds), lv...)
	}
	if ct.Memory != nil && ct.Memory.WorkingSetBytes != nil {
		ch <- stamped(ct.Memory.Time.Time, containerMemoryUsageDesc, metrics.GaugeValue, float64(*ct.Memory.WorkingSetBytes), lv...)
	}
	if ct.Swap == nil {
		return
	}
	var used float64
	if ct.Swap.SwapUsageBytes != nil {
		used = float64(*ct.Swap.SwapUsageBytes)
		ch <- stamped(ct.Swap.Time.Time, containerSwapUsageDesc, metrics.GaugeValue, used, lv...)
	}
	if ct.Swap.SwapAvailableBytes != nil {
		ch <- stamped(ct.Swap.Time.Time, containerSwapLimitDesc, metrics.GaugeValue, float64(*ct.Swap.SwapAvailableBytes)+used, lv...)
	}
}

func stamped(at time.Time, d *metrics.Desc, t metrics.ValueType, v float64, lv ...string) metrics.Metric {
	return metrics.NewLazyMetricWithTimestamp(at, metrics.NewLazyConstMetric(d, t, v, lv...))
}

func seconds(ns uint64) float64 { return float64(ns) / float64(time.Second) }
