// Package kubelet wires minikubelet's parts together. Run (run.go) builds each part in
// turn (API clients, runtime and its state cache, node controller, pod workers, pod
// sources, log rotation, the kubelet API), then runs them until the context ends; it
// decides nothing itself.
package kubelet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/certificate"
	"k8s.io/klog/v2"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"

	"github.com/minikubelet/minikubelet/config"
	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/cm"
	"github.com/minikubelet/minikubelet/pkg/kubelet/dns"
	"github.com/minikubelet/minikubelet/pkg/kubelet/node"
	"github.com/minikubelet/minikubelet/pkg/kubelet/podworker"
	"github.com/minikubelet/minikubelet/pkg/kubelet/source"
	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
	"github.com/minikubelet/minikubelet/pkg/runtimecache"
	"github.com/minikubelet/minikubelet/pkg/version"
)

// relistPeriod is the safety-net relist; runtime events normally arrive first.
const relistPeriod = 5 * time.Second

// podsWithStatus lists the node's pods with the newest status the node derived (what
// /pods serves; on a standalone node the only place a static pod's status is seen).
func podsWithStatus(w *podworker.Workers, st *status.Manager) func() []*v1.Pod {
	return func() []*v1.Pod {
		pods := w.Pods()
		for i, p := range pods {
			if s, ok := st.Status(p.UID); ok {
				// A shallow copy: the spec and metadata are shared, read-only as the
				// informer's objects are; only the status is the node's own. The eviction
				// manager's stats ask for every pod each 10 s.
				c := *p
				c.Status = s
				pods[i] = &c
			}
		}
		return pods
	}
}

// staticHandler runs static pods and has their mirror pods follow at once.
type staticHandler struct {
	w *podworker.Workers
	m *source.Mirrors
}

func (h staticHandler) Update(p *v1.Pod) { h.w.Update(p); h.m.Wake() }
func (h staticHandler) Remove(p *v1.Pod) { h.w.Remove(p); h.m.Wake() }

// nodeLogs gives log rotation this node's running containers (from the state cache) and
// the runtime to reopen their logs.
type nodeLogs struct {
	*cri.Client
	state *runtimecache.Cache
}

func (n nodeLogs) RunningLogs(ctx context.Context) (map[string]string, error) {
	return n.state.RunningLogs(ctx)
}

// removeOrphans removes pods the runtime has but no worker knows, once every source has
// delivered its pods.
func removeOrphans(logger klog.Logger, sourcesSynced func() bool, workers *podworker.Workers, present map[types.UID]runtimecache.PodRef) {
	if sourcesSynced == nil || !sourcesSynced() {
		return
	}
	for uid, ref := range present {
		if !workers.Known(uid) {
			logger.Info("Removing orphaned pod from the runtime", "podUID", uid, "pod", ref.Namespace+"/"+ref.Name)
			workers.Remove(&v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid, Namespace: ref.Namespace, Name: ref.Name}})
		}
	}
}

// podCgroupUse tells the cgroup manager's orphan sweep what a pod found in the cgroup
// tree is to the node, as upstream's housekeeping decides: in use until every source
// has delivered its pods, while a worker holds it, or while the runtime still has it (it
// is removed through the runtime first); otherwise gone, unless its volumes are left.
func podCgroupUse(sourcesSynced func() bool, workers, runtime, volumes func(types.UID) bool) func(types.UID) cm.PodUse {
	return func(uid types.UID) cm.PodUse {
		switch {
		case !sourcesSynced() || workers(uid) || runtime(uid):
			return cm.PodInUse
		case volumes(uid):
			return cm.PodVolumesLeft
		}
		return cm.PodGone
	}
}

// runtimeAdapter gives the node controller the runtime's readiness, with the state
// cache's health as upstream's PLEG check adds it.
type runtimeAdapter struct {
	c     *cri.Client
	state *runtimecache.Cache
}

func (r runtimeAdapter) Ready(ctx context.Context) []string {
	errs := r.c.Ready(ctx)
	if err := r.state.Healthy(); err != nil {
		errs = append(errs, err.Error())
	}
	return errs
}

func (r runtimeAdapter) Version(ctx context.Context) (string, error) { return r.c.RuntimeVersion(ctx) }

// serverRuntime gives the kubelet API the runtime, with pods' state from the cache.
type serverRuntime struct {
	*cri.Client
	state *runtimecache.Cache
}

func (s serverRuntime) PodState(ctx context.Context, _ string, uid types.UID) (*cri.PodState, error) {
	return s.state.Get(ctx, uid)
}

func (s serverRuntime) Counts() (int, map[cri.ContainerState]int) { return s.state.Counts() }

// clients are the node's API clients, as upstream's: the main one is limited by
// kubeAPIQPS and kubeAPIBurst; events have their own, limited by eventRecordQPS (0: no
// limit) and eventBurst, so that a burst of events never delays a status write; node
// status and the Lease have one that is not rate-limited and times out after
// nodeStatusUpdateFrequency (at most the Lease's duration).
type clients struct {
	api, heartbeat kubernetes.Interface
	events         typedcorev1.EventsGetter
}

// apiClients makes the clients with the node's credentials: TLS bootstrap when
// --kubeconfig is missing or expired (this waits for the CSR to be issued), client
// certificate rotation (node/bootstrap.go).
func apiClients(ctx context.Context, cfg *config.Config, nodeName string) (clients, error) {
	k := &cfg.Kubelet
	restCfg, err := node.ClientConfig(ctx, node.ClientCertConfig{
		KubeconfigPath: cfg.KubeconfigPath, BootstrapKubeconfigPath: cfg.BootstrapKubeconfigPath,
		CertDir: cfg.CertDir, NodeName: nodeName, Rotate: k.RotateCertificates,
	})
	if err != nil {
		if ctx.Err() != nil {
			return clients{}, ctx.Err() // stopped while waiting for the certificate
		}
		return clients{}, oneLine(err)
	}
	restCfg.UserAgent = "minikubelet/" + version.Version
	apiCfg, heartbeatCfg, eventCfg := clientConfigs(restCfg, k)
	var c clients
	if c.api, err = kubernetes.NewForConfig(apiCfg); err == nil {
		if c.heartbeat, err = kubernetes.NewForConfig(heartbeatCfg); err == nil {
			c.events, err = typedcorev1.NewForConfig(eventCfg)
		}
	}
	if err != nil {
		return clients{}, fmt.Errorf("--kubeconfig %s: %w", cfg.KubeconfigPath, oneLine(err))
	}
	return c, nil
}

// clientConfigs derives the three clients' settings (see clients) from the node's.
func clientConfigs(base *rest.Config, k *kubeletv1beta1.KubeletConfiguration) (api, heartbeat, events *rest.Config) {
	api, heartbeat, events = rest.CopyConfig(base), rest.CopyConfig(base), rest.CopyConfig(base)
	api.QPS, api.Burst = float32(*k.KubeAPIQPS), int(k.KubeAPIBurst)
	heartbeat.QPS = -1
	heartbeat.Timeout = min(k.NodeStatusUpdateFrequency.Duration, time.Duration(k.NodeLeaseDurationSeconds)*time.Second)
	events.QPS, events.Burst = float32(*k.EventRecordQPS), int(k.EventBurst)
	if events.QPS == 0 {
		events.QPS = -1 // as upstream: 0 is no limit (client-go would take its default of 5)
	}
	return api, heartbeat, events
}

// servingCertificate starts the manager of the kubelet API's serving certificate when
// serverTLSBootstrap is set (node/servingcert.go); nil when it is not, or cannot be.
func servingCertificate(ctx context.Context, cfg *config.Config, client kubernetes.Interface, nodeName, hostname string, ips []string) (certificate.Manager, error) {
	k := &cfg.Kubelet
	if !k.ServerTLSBootstrap {
		return nil, nil
	}
	logger := klog.FromContext(ctx)
	if client == nil {
		// Standalone: upstream accepts the setting and starts the manager without a client,
		// so it never asks for a certificate and (with none left from an earlier run) every
		// handshake fails, while the static pods run. We keep the node running as upstream
		// does, but serve what upstream serves without serverTLSBootstrap (tlsCertFile or
		// the self-signed certificate), so that /pods, the only view of a standalone node's
		// pods, stays reachable; a validation error would refuse to run the pods at all.
		logger.Info("serverTLSBootstrap (--rotate-server-certificates) needs an API server to request the serving certificate from; standalone, serving the self-signed certificate (or tlsCertFile) instead")
		return nil, nil
	}
	if k.TLSCertFile != "" {
		// As upstream: the file is the certificate store's starting pair, not a way out of
		// the CSR. It is served until the manager has one issued: at once when it is not
		// for system:node:<name> with the node's names and addresses, else near its end.
		logger.Info("serverTLSBootstrap (--rotate-server-certificates) with tlsCertFile (--tls-cert-file): serving the file's certificate until a kubelet-serving CSR replaces it, as upstream does",
			"tlsCertFile", k.TLSCertFile)
	}
	mgr, err := node.ServingCertificate(ctx, node.ServingCertConfig{
		Client: client, NodeName: nodeName, Hostname: hostname, IPs: ips,
		CertDir: cfg.CertDir, CertFile: k.TLSCertFile, KeyFile: k.TLSPrivateKeyFile,
	})
	if err != nil {
		return nil, oneLine(err)
	}
	return mgr, nil
}

// addressIPs are the addresses of the given types.
func addressIPs(addrs []v1.NodeAddress, types ...v1.NodeAddressType) []string {
	var out []string
	for _, a := range addrs {
		if slices.Contains(types, a.Type) {
			out = append(out, a.Address)
		}
	}
	return out
}

// names returns the node name and hostname: --hostname-override or the host name, lower-cased.
func names(cfg *config.Config) (string, string, error) {
	name := cfg.HostnameOverride
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return "", "", fmt.Errorf("hostname (--hostname-override): %w", err)
		}
		name = h
	}
	name = strings.ToLower(strings.TrimSpace(name))
	if name == "" {
		return "", "", errors.New("hostname (--hostname-override): empty node name")
	}
	return name, name, nil
}

// reservedResources is what allocatable leaves out of capacity: kubeReserved,
// systemReserved and hard, what the hard eviction thresholds hold back.
func reservedResources(kube, system map[string]string, hard v1.ResourceList) (v1.ResourceList, error) {
	out := v1.ResourceList{}
	add := func(field string, list map[string]string) error {
		for name, val := range list {
			q, err := resource.ParseQuantity(val)
			if err != nil {
				return fmt.Errorf("%s[%s]: %w", field, name, err)
			}
			cur := out[v1.ResourceName(name)]
			cur.Add(q)
			out[v1.ResourceName(name)] = cur
		}
		return nil
	}
	if err := add("kubeReserved (--kube-reserved)", kube); err != nil {
		return nil, err
	}
	if err := add("systemReserved (--system-reserved)", system); err != nil {
		return nil, err
	}
	for name, q := range hard {
		cur := out[name]
		cur.Add(q)
		out[name] = cur
	}
	return out, nil
}

// oneLine keeps start-up errors on one line (some client errors span several).
func oneLine(err error) error {
	return errors.New(strings.Join(strings.Fields(err.Error()), " "))
}

// nodeDNS is the node's DNS setup for pods, as upstream's: clusterDNS entries that are not
// IPs are skipped (config.Parse warned of them), the loopback fallback follows --node-ip,
// and the resolver file is checked against the search limits once, a problem becoming a
// node event.
func nodeDNS(k *kubeletv1beta1.KubeletConfiguration, nodeIP string, event func(dns.Event)) dns.Node {
	n := dns.Node{ClusterDomain: k.ClusterDomain, ResolvConf: *k.ResolverConfig}
	n.ClusterDNS, _ = dns.ParseClusterDNS(k.ClusterDNS)
	if ip := net.ParseIP(nodeIP); ip != nil {
		n.NodeIPs = []net.IP{ip}
	}
	if n.ResolvConf != "" {
		if e := dns.CheckResolvConf(n.ResolvConf, n.ClusterDomain); e != nil {
			event(*e)
		}
	}
	return n
}
