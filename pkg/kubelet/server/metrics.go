package server

import (
	"context"
	"math"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/component-base/metrics/legacyregistry"
	// client-go's request metrics (rest_client_*), registered in the legacy registry as
	// upstream's kubelet does.
	_ "k8s.io/component-base/metrics/prometheus/restclient"

	"github.com/minikubelet/minikubelet/pkg/cri"
	kmetrics "github.com/minikubelet/minikubelet/pkg/kubelet/metrics"
	"github.com/minikubelet/minikubelet/pkg/probe"
	"github.com/minikubelet/minikubelet/pkg/runtimecache"
)

// metricsHandler serves /metrics: the runtime-operation metrics, pod start durations, the
// running pods and containers (from the runtime state cache), and, from component-base's
// legacy registry as upstream, the process and Go runtime metrics and client-go's.
func (s *Server) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(cri.Collectors()...)
	reg.MustRegister(runtimecache.Collectors()...)
	reg.MustRegister(kmetrics.Collectors()...)
	reg.MustRegister(&runtimeCollector{rt: s.cfg.Runtime})
	if src := s.cfg.ServingCertificate; src != nil {
		reg.MustRegister(servingCertTTL(src))
	}
	if s.cfg.Stats != nil {
		reg.MustRegister(volumeStatsCollector{s.cfg.Stats})
	}
	return promhttp.HandlerFor(prometheus.Gatherers{legacyregistry.DefaultGatherer, reg}, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// probeMetricsHandler serves /metrics/probes: the prober's results and durations.
func probeMetricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(probe.Collectors()...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Upstream's names and help texts.
var (
	runningPodsDesc = prometheus.NewDesc("kubelet_running_pods",
		"Number of pods that have a running pod sandbox", nil, nil)
	runningContainersDesc = prometheus.NewDesc("kubelet_running_containers",
		"Number of containers currently running", []string{"container_state"}, nil)
)

// servingCertTTL is upstream's kubelet_certificate_manager_server_ttl_seconds (name and
// help as upstream's): seconds until the serving certificate expires, +Inf without one.
func servingCertTTL(src CertificateSource) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Subsystem: "kubelet",
		Name:      "certificate_manager_server_ttl_seconds",
		Help: "Gauge of the shortest TTL (time-to-live) of the Kubelet's serving certificate. " +
			"The value is in seconds until certificate expiry (negative if already expired). " +
			"If serving certificate is invalid or unused, the value will be +INF.",
	}, func() float64 {
		if c := src.Current(); c != nil && c.Leaf != nil {
			return math.Trunc(time.Until(c.Leaf.NotAfter).Seconds())
		}
		return math.Inf(1)
	})
}

// runtimeCollector counts this node's pods with a ready sandbox and its containers by
// state, from the runtime state cache (a scrape makes no runtime call).
type runtimeCollector struct {
	rt Runtime
}

func (c *runtimeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- runningPodsDesc
	ch <- runningContainersDesc
}

func (c *runtimeCollector) Collect(ch chan<- prometheus.Metric) {
	pods, containers := c.rt.Counts()
	ch <- prometheus.MustNewConstMetric(runningPodsDesc, prometheus.GaugeValue, float64(pods))
	for state, n := range containers {
		ch <- prometheus.MustNewConstMetric(runningContainersDesc, prometheus.GaugeValue, float64(n), string(state))
	}
}

// Upstream's kubelet_volume_stats_* (names, labels and help as upstream's, ALPHA).
var volumeStatsDescs = [6]*prometheus.Desc{
	volumeStatsDesc("capacity_bytes", "Capacity in bytes of the volume"),
	volumeStatsDesc("available_bytes", "Number of available bytes in the volume"),
	volumeStatsDesc("used_bytes", "Number of used bytes in the volume"),
	volumeStatsDesc("inodes", "Maximum number of inodes in the volume"),
	volumeStatsDesc("inodes_free", "Number of free inodes in the volume"),
	volumeStatsDesc("inodes_used", "Number of used inodes in the volume"),
}

func volumeStatsDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("kubelet_volume_stats_"+name, "[ALPHA] "+help, []string{"namespace", "persistentvolumeclaim"}, nil)
}

// volumeStatsCollector reports each claim's volume as its plugin measures it (cached by
// the volume manager for volumeStatsAggPeriod).
type volumeStatsCollector struct{ stats Stats }

func (c volumeStatsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range volumeStatsDescs {
		ch <- d
	}
}

func (c volumeStatsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, v := range c.stats.ClaimVolumeStats(ctx) {
		for i, val := range []*uint64{v.CapacityBytes, v.AvailableBytes, v.UsedBytes, v.Inodes, v.InodesFree, v.InodesUsed} {
			if val != nil {
				ch <- prometheus.MustNewConstMetric(volumeStatsDescs[i], prometheus.GaugeValue, float64(*val), v.PVCRef.Namespace, v.PVCRef.Name)
			}
		}
	}
}
