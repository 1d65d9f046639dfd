package kubelet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/cgroups"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/component-base/tracing"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/config"
	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/allocation"
	"github.com/minikubelet/minikubelet/pkg/kubelet/clustertrustbundle"
	"github.com/minikubelet/minikubelet/pkg/kubelet/cm"
	"github.com/minikubelet/minikubelet/pkg/kubelet/dns"
	"github.com/minikubelet/minikubelet/pkg/kubelet/eviction"
	"github.com/minikubelet/minikubelet/pkg/kubelet/imagegc"
	"github.com/minikubelet/minikubelet/pkg/kubelet/informer"
	"github.com/minikubelet/minikubelet/pkg/kubelet/logs"
	"github.com/minikubelet/minikubelet/pkg/kubelet/node"
	"github.com/minikubelet/minikubelet/pkg/kubelet/podcertificate"
	"github.com/minikubelet/minikubelet/pkg/kubelet/podworker"
	"github.com/minikubelet/minikubelet/pkg/kubelet/server"
	"github.com/minikubelet/minikubelet/pkg/kubelet/source"
	"github.com/minikubelet/minikubelet/pkg/kubelet/stats"
	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
	"github.com/minikubelet/minikubelet/pkg/kubelet/userns"
	"github.com/minikubelet/minikubelet/pkg/probe"
	"github.com/minikubelet/minikubelet/pkg/runtimecache"
	"github.com/minikubelet/minikubelet/pkg/version"
	"github.com/minikubelet/minikubelet/pkg/volume"
	"github.com/minikubelet/minikubelet/pkg/volume/csi"
)

// errStopped: the context ended while start-up waited (for the node's certificate).
var errStopped = errors.New("stopped during start-up")

// parts are what Run builds and connects; each build step fills some of them.
type parts struct {
	cfg                *config.Config
	logger             klog.Logger
	nodeName, hostname string
	client, heartbeat  kubernetes.Interface // nil: standalone
	nodes              coreinformers.NodeInformer
	eventClient        typedcorev1.EventsGetter
	rt                 *cri.Client
	runtimeName        string // the runtime's name (CRI Version), the scheme of container IDs
	state              *runtimecache.Cache
	recorder           record.EventRecorder
	addrs              []v1.NodeAddress
	machine            node.Machine
	reserved           v1.ResourceList
	thresholds         []eviction.Threshold // the eviction thresholds, parsed once
	statusMgr          *status.Manager
	workers            *podworker.Workers
	pods               *source.API
	static             *source.Static
	mirrors            *source.Mirrors
	stats              *stats.Provider
	csi                *csi.Volumes
	volumes            *volume.Manager
	imageGCMgr         *imagegc.Manager
	evictions          evictionRef
	// runners run until the context ends; a critical one that fails stops the kubelet.
	runners []runner
	// closers release what the build steps opened, last first.
	closers []func()
	// tracer traces pod syncs and CRI calls (tracing.go).
	tracer tracing.TracerProvider
}

type runner struct {
	name     string
	run      func(context.Context) error
	critical bool
}

func (p *parts) add(name string, run func(context.Context)) {
	p.runners = append(p.runners, runner{name: name, run: func(ctx context.Context) error { run(ctx); return nil }})
}

// Run starts the kubelet and blocks until ctx ends (then shuts down) or start-up fails.
// Start-up errors are one line naming the flag or file at fault.
func Run(ctx context.Context, cfg *config.Config) error {
	p := &parts{cfg: cfg, logger: klog.FromContext(ctx)}
	defer func() {
		for i := len(p.closers) - 1; i >= 0; i-- {
			p.closers[i]()
		}
	}()
	for _, build := range []func(context.Context) error{
		p.apiClients, p.tracing, p.runtime, p.machineFacts, p.events, p.csiPlugins, p.nodeController, p.healthz,
		p.podWorkers, p.podSources, p.logRotation, p.measurement, p.kubeletAPI, p.imageGC,
		p.evictionManager,
	} {
		if err := build(ctx); errors.Is(err, errStopped) {
			return nil
		} else if err != nil {
			return err
		}
	}
	p.logger.Info("Starting minikubelet", "version", version.Version, "node", p.nodeName)
	return p.run(ctx)
}

// run runs every runner until ctx ends or a critical one fails, then waits for them all.
func (p *parts) run(ctx context.Context) error {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for _, r := range p.runners {
		wg.Go(func() {
			if err := r.run(runCtx); err != nil && r.critical {
				p.logger.Error(err, "Stopped", "part", r.name)
				stop()
			}
		})
	}
	<-runCtx.Done()
	p.logger.Info("Shutting down")
	wg.Wait()
	return nil
}

// apiClients: the node's names and API clients. Without --kubeconfig the node is
// standalone: it runs its static pods only, with no Node object, no pod statuses written
// and no events sent (kept in memory and logs).
func (p *parts) apiClients(ctx context.Context) error {
	var err error
	if p.nodeName, p.hostname, err = names(p.cfg); err != nil {
		return err
	}
	if p.cfg.KubeconfigPath == "" {
		p.logger.Info("Standalone mode: no API server; running static pods only", "staticPodPath", p.cfg.Kubelet.StaticPodPath)
		return nil
	}
	c, err := apiClients(ctx, p.cfg, p.nodeName)
	if err != nil && ctx.Err() != nil {
		return errStopped
	}
	p.client, p.heartbeat, p.eventClient = c.api, c.heartbeat, c.events
	return err
}

// runtime: the CRI client, checked to answer, and the state cache fed by its events and
// told of every mutation made through it.
func (p *parts) runtime(ctx context.Context) error {
	k := &p.cfg.Kubelet
	rt, err := cri.Dial(k.ContainerRuntimeEndpoint, k.ImageServiceEndpoint, cri.WithTracerProvider(p.tracer))
	if err != nil {
		return fmt.Errorf("--container-runtime-endpoint: %w", err)
	}
	p.rt = rt
	p.closers = append(p.closers, func() { rt.Close() })
	p.state, err = runtimecache.New(runtimecache.Config{Runtime: rt, Node: p.nodeName, RelistPeriod: relistPeriod,
		Changed: func(uid types.UID) { p.workers.Wake(uid) },
		Relisted: func(present map[types.UID]runtimecache.PodRef) {
			removeOrphans(p.logger, p.sourcesSynced, p.workers, present)
		}})
	if err != nil {
		return err
	}
	rt.OnChange(p.state.Observe)
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	rv, err := rt.Version(vctx)
	cancel()
	if err != nil {
		return fmt.Errorf("--container-runtime-endpoint %s: runtime not reachable: %w", k.ContainerRuntimeEndpoint, oneLine(err))
	}
	p.logger.Info("Connected to container runtime", "runtime", rv.GetRuntimeName(), "version", rv.GetRuntimeVersion(), "criVersion", rv.GetRuntimeApiVersion())
	p.runtimeName = rv.GetRuntimeName()
	// As upstream, the runtime's cgroup driver wins over the configured one: pods' cgroup
	// parents, the cgroup manager and stats all read it from here on.
	if k.CgroupDriver, err = rt.CgroupDriver(ctx, k.CgroupDriver); err != nil {
		return fmt.Errorf("--container-runtime-endpoint %s: %w", k.ContainerRuntimeEndpoint, oneLine(err))
	}
	// Runtime events update the cache at once; its periodic relist repairs what an
	// interrupted event stream missed.
	p.add("runtime state cache", p.state.Run)
	p.add("runtime events", func(ctx context.Context) { rt.WatchEvents(ctx, p.state.Event) })
	return nil
}

// machineFacts: the root directory, the node's addresses, machine, eviction thresholds and
// reserved resources.
func (p *parts) machineFacts(context.Context) error {
	k := &p.cfg.Kubelet
	if err := os.MkdirAll(p.cfg.RootDir, 0o750); err != nil {
		return fmt.Errorf("--root-dir: %w", err)
	}
	var err error
	if p.addrs, err = node.Addresses(p.cfg.NodeIP, p.hostname); err != nil {
		return err
	}
	if p.machine, err = node.ReadMachine(p.cfg.RootDir); err != nil {
		return fmt.Errorf("reading machine facts: %w", err)
	}
	if p.thresholds, err = eviction.ParseThresholds(eviction.SettingsOf(k)); err != nil {
		return fmt.Errorf("eviction thresholds: %w", err)
	}
	capacity := v1.ResourceList{v1.ResourceMemory: *resource.NewQuantity(p.machine.MemoryBytes, resource.BinarySI),
		v1.ResourceEphemeralStorage: *resource.NewQuantity(p.machine.EphemeralBytes, resource.BinarySI)}
	p.reserved, err = reservedResources(k.KubeReserved, k.SystemReserved, eviction.HardReservation(p.thresholds, capacity))
	return err
}

// events: upstream's event recorder, sending to the API when there is one.
func (p *parts) events(ctx context.Context) error {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartStructuredLogging(3)
	if p.eventClient != nil {
		b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: p.eventClient.Events("")})
	}
	p.closers = append(p.closers, b.Shutdown)
	p.recorder = b.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: p.nodeName})
	return nil
}

// csiPlugins: CSI drivers registering through <root-dir>/plugins_registry.
func (p *parts) csiPlugins(context.Context) error {
	reg := csi.NewRegistry(csi.Config{RootDir: p.cfg.RootDir, NodeName: p.nodeName, Client: p.client})
	p.csi = csi.NewVolumes(reg)
	p.add("csi plugins", reg.Run)
	return nil
}

// nodeController: registration, node status and the Lease (not on a standalone node).
func (p *parts) nodeController(context.Context) error {
	if p.client == nil {
		return nil
	}
	k := &p.cfg.Kubelet
	ctl, err := node.New(node.Config{
		Client: p.client, HeartbeatClient: p.heartbeat, Runtime: runtimeAdapter{p.rt, p.state}, Recorder: p.recorder,
		NodeName: p.nodeName, Hostname: p.hostname, Addresses: p.addrs,
		Labels: p.cfg.NodeLabels, Taints: k.RegisterWithTaints,
		MaxPods: k.MaxPods, Reserved: p.reserved, KubeletPort: k.Port,
		KubeletVersion: version.KubeletVersion(), Machine: p.machine,
		PressureFunc:         p.evictions.pressure,
		UpdateFrequency:      k.NodeStatusUpdateFrequency.Duration,
		ReportFrequency:      k.NodeStatusReportFrequency.Duration,
		LeaseDurationSeconds: k.NodeLeaseDurationSeconds,
		Handlers:             p.rt.Handlers(), // kept by its runtime poll (Ready)
		VolumesInUse:         p.csi.InUse,
		Images:               p.rt.ListImages,
		MaxImages:            *k.NodeStatusMaxImages,
		Nodes:                p.nodeInformer(),
	})
	if err != nil {
		return err
	}
	p.runners = append(p.runners, runner{name: "node controller", run: ctl.Run, critical: true})
	return nil
}

// healthz: the plain-HTTP /healthz endpoint, listening from start-up on.
func (p *parts) healthz(context.Context) error {
	k := &p.cfg.Kubelet
	if *k.HealthzPort <= 0 {
		return nil
	}
	addr := net.JoinHostPort(k.HealthzBindAddress, strconv.Itoa(int(*k.HealthzPort)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("healthzPort (--healthz-port) %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	p.add("healthz", func(ctx context.Context) {
		<-ctx.Done() // stop answering as soon as shutdown begins
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	})
	return nil
}

// certificateSources: the managers behind clusterTrustBundle and podCertificate projected
// sources (none on a standalone node).
func (p *parts) certificateSources(cfg *volume.Config) error {
	if p.client == nil {
		return nil
	}
	ctbs := clustertrustbundle.New(p.client)
	p.add("cluster trust bundles", ctbs.Run)
	cfg.TrustBundles = ctbs
	nodes := p.nodeInformer().Lister()
	certs, err := podcertificate.New(podcertificate.Config{Client: p.client, NodeName: p.nodeName, Recorder: p.recorder,
		NodeUID: func() (types.UID, error) {
			n, err := nodes.Get(p.nodeName)
			if err != nil {
				return "", err
			}
			return n.UID, nil
		}})
	if err != nil {
		return err
	}
	p.add("pod certificates", certs.Run)
	cfg.PodCertificates = certs
	return nil
}

// podWorkers: the status manager, volumes, services for env vars, probes and the pod
// workers that use them.
func (p *parts) podWorkers(ctx context.Context) error {
	k := &p.cfg.Kubelet
	podDNS := nodeDNS(k, p.cfg.NodeIP, func(e dns.Event) {
		p.recorder.Event(p.nodeRef(), v1.EventTypeWarning, e.Reason, e.Message)
	})
	p.statusMgr = status.NewManager(p.client)
	nodeStatus := node.BuildStatus(node.StatusInputs{Machine: p.machine, MaxPods: k.MaxPods, Reserved: p.reserved}, v1.NodeStatus{}, metav1.Now())
	allocatable := nodeStatus.Allocatable
	thisNode := p.admissionNode(nodeStatus)
	volCfg := volume.Config{Client: p.client, RootDir: p.cfg.RootDir, Allocatable: allocatable, Node: thisNode, CSI: p.csi,
		StatsPeriod: k.VolumeStatsAggPeriod.Duration, Event: p.recorder.Event}
	if err := p.certificateSources(&volCfg); err != nil {
		return err
	}
	volumes, err := volume.New(volCfg)
	if err != nil {
		return err
	}
	p.volumes = volumes
	usernsMgr, err := p.usernsManager(ctx)
	if err != nil {
		return err
	}
	cgroupMgr, err := p.podCgroups(nodeStatus.Capacity)
	if err != nil {
		return err
	}
	allocations, err := allocation.NewManager(p.cfg.RootDir)
	if err != nil {
		return fmt.Errorf("pod allocations: %w", err)
	}
	serviceLister, servicesSynced := p.services()
	probes := probe.NewManager(p.rt.ExecSync, func(pod *v1.Pod, c *v1.Container, typ, reason, format string, args ...any) {
		p.recorder.Eventf(podworker.ContainerRef(pod, c), typ, reason, format, args...)
	}, func(uid types.UID) { p.workers.Wake(uid) })
	p.workers, err = podworker.New(podworker.Config{
		NodeName: p.nodeName, HostIPs: addressIPs(p.addrs, v1.NodeInternalIP), Allocatable: allocatable, Volumes: volumes,
		Runtime: p.rt, RuntimeName: p.runtimeName, State: p.state, MaxPods: int(k.MaxPods), AllowedUnsafeSysctls: k.AllowedUnsafeSysctls,
		AppArmorEnabled: podworker.HostAppArmorEnabled(), Node: thisNode, Pressure: p.evictions.admit,
		HugePageSizes: cgroups.HugePageSizes(), MemoryCapacity: p.machine.MemoryBytes,
		Services: serviceLister, ServicesSynced: servicesSynced, Status: p.statusMgr, Recorder: p.recorder, Client: p.client,
		Tracer:  p.tracer.Tracer(instrumentationScope),
		RootDir: p.cfg.RootDir, PodLogsDir: k.PodLogsDir, ContainerLogsDir: p.cfg.ContainerLogsDir, DNS: podDNS, Probes: probes,
		CgroupsPerQOS: *k.CgroupsPerQOS, CgroupRoot: k.CgroupRoot, CgroupDriver: k.CgroupDriver,
		Network: p.rt.Network(), // kept by the node controller's runtime poll
		Userns:  usernsMgr, Cgroups: cgroupMgr, Allocation: allocations,
	})
	if err != nil {
		return err
	}
	p.add("status manager", p.statusMgr.Run)
	p.add("pod workers", p.workers.Run)
	p.add("probes", probes.Run)
	p.add("volumes", volumes.Run)
	return nil
}

// podCgroups: the QoS cgroups, made now, and the pod cgroups' maker (nil, an untyped
// nil interface, without cgroupsPerQOS). With the systemd driver they are slices that
// the node's systemd makes and limits (through the cgroup library, as upstream).
func (p *parts) podCgroups(capacity v1.ResourceList) (podworker.PodCgroups, error) {
	k := &p.cfg.Kubelet
	if !*k.CgroupsPerQOS {
		return nil, nil
	}
	reserved, err := reservedResources(k.KubeReserved, k.SystemReserved, nil)
	if err != nil {
		return nil, err
	}
	mgr := cm.NewManager(cm.ManagerConfig{Driver: k.CgroupDriver, Root: k.CgroupRoot,
		Allocatable: cm.NodeAllocatable(capacity, reserved, cm.PidMax(), slices.Contains(k.EnforceNodeAllocatable, "pods")),
		Pod:         cm.PodOptions{EnforceCPULimits: true, PidsLimit: *k.PodPidsLimit, HugePageSizes: cgroups.HugePageSizes()},
		ActivePods: func() []*v1.Pod {
			if p.workers == nil { // Start, before the workers exist: no pods yet
				return nil
			}
			return p.workers.ActivePods()
		},
		PodUse: podCgroupUse(p.sourcesSynced, p.holdsCgroup, p.state.Has, p.volumes.Exist)})
	if err := mgr.Start(); err != nil {
		return nil, fmt.Errorf("making the QoS cgroups: %w", err)
	}
	p.add("qos cgroups", mgr.Run)
	return mgr, nil
}

// holdsCgroup: a pod worker may still need the pod's cgroup (none before the workers exist).
func (p *parts) holdsCgroup(uid types.UID) bool {
	return p.workers != nil && p.workers.HoldsCgroup(uid)
}

// usernsManager: the user namespaces of `hostUsers: false` pods, their blocks read back
// from the pods' directories (a start that cannot read them fails, as upstream's).
func (p *parts) usernsManager(ctx context.Context) (*userns.Manager, error) {
	k := &p.cfg.Kubelet
	var idsPerPod int64
	if k.UserNamespaces != nil && k.UserNamespaces.IDsPerPod != nil {
		idsPerPod = *k.UserNamespaces.IDsPerPod
	}
	m, err := userns.New(ctx, userns.Config{PodsDir: filepath.Join(p.cfg.RootDir, "pods"), IDsPerPod: idsPerPod,
		MaxPods: int(k.MaxPods), Runtime: p.rt})
	if err != nil {
		return nil, fmt.Errorf("create user namespace manager: %w", err)
	}
	return m, nil
}

// services: the services informer, for the service-link env vars pods get.
func (p *parts) services() (corelisters.ServiceLister, func() bool) {
	if p.client == nil {
		return nil, nil
	}
	f := informers.NewSharedInformerFactoryWithOptions(p.client, 0, informers.WithTransform(informer.StripManagedFields))
	services := f.Core().V1().Services()
	lister, synced := services.Lister(), services.Informer().HasSynced
	p.add("services informer", func(ctx context.Context) {
		f.Start(ctx.Done())
		<-ctx.Done()
		informer.ShutdownWithin(f, time.Second)
	})
	return lister, synced
}

// admissionNode: the node pods are admitted against, from an informer watching this node
// only; before it has the node, or on a standalone node, the node this kubelet registers
// (labels, --node-labels, registerWithTaints, status), as upstream's getNodeAnyWay.
func (p *parts) admissionNode(st v1.NodeStatus) func() (*v1.Node, error) {
	local := p.localNode(st)
	if p.client == nil {
		return func() (*v1.Node, error) { return local.DeepCopy(), nil }
	}
	nodes := p.nodeInformer()
	lister, synced := nodes.Lister(), nodes.Informer().HasSynced
	return func() (*v1.Node, error) {
		if synced() {
			if n, err := lister.Get(p.nodeName); err == nil {
				return node.WithOwnFeatures(n, p.rt.Handlers()), nil
			}
		}
		return local.DeepCopy(), nil
	}
}

// nodeInformer is the one informer on this node's Node, shared by admission and the node
// controller; made at the first call.
func (p *parts) nodeInformer() coreinformers.NodeInformer {
	if p.nodes != nil {
		return p.nodes
	}
	f := node.NodeInformerFactory(p.client, p.nodeName)
	p.nodes = f.Core().V1().Nodes()
	p.nodes.Informer() // registered before the start
	p.add("node informer", func(ctx context.Context) {
		f.Start(ctx.Done())
		<-ctx.Done()
		informer.ShutdownWithin(f, time.Second)
	})
	return p.nodes
}

// localNode is the Node object this kubelet registers, as the node controller builds it,
// with status st.
func (p *parts) localNode(st v1.NodeStatus) *v1.Node {
	labels := node.Labels(p.hostname, p.machine, p.cfg.NodeLabels)
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: p.nodeName, Labels: labels},
		Spec: v1.NodeSpec{Taints: p.cfg.Kubelet.RegisterWithTaints}, Status: st}
}

// podSources: pods bound to the node from the API, and static pods from manifest files,
// each mirrored into the API when there is one.
func (p *parts) podSources(context.Context) error {
	k := &p.cfg.Kubelet
	if p.client != nil {
		var err error
		if p.pods, err = source.NewAPI(p.client, p.nodeName, p.workers); err != nil {
			return err
		}
		p.pods.Changed = p.statusMgr.Reconcile
		p.statusMgr.Cached = p.pods.Pod
		p.add("API pods", p.pods.Run)
	}
	if k.StaticPodPath == "" {
		return nil
	}
	var h source.Handler = p.workers
	if p.pods != nil {
		p.mirrors = source.NewMirrors(source.Mirrors{Client: p.client, Node: p.nodeName, API: p.pods.Mirrors, Created: p.statusMgr.Rewrite})
		p.pods.MirrorChanged = p.mirrors.Wake
		h = staticHandler{p.workers, p.mirrors}
		p.add("mirror pods", p.mirrors.Run)
	}
	p.static = source.NewStatic(k.StaticPodPath, p.nodeName, time.Second, h)
	if p.mirrors != nil {
		p.mirrors.Static = p.static.Pods
	}
	p.add("static pods", p.static.Run)
	return nil
}

// sourcesSynced: every source has delivered its pods (so unknown pods are orphans).
func (p *parts) sourcesSynced() bool {
	return (p.pods == nil || p.pods.HasSynced()) && (p.static == nil || p.static.HasSynced())
}

// logRotation: containers' logs rotated at containerLogMaxSize.
func (p *parts) logRotation(context.Context) error {
	k := &p.cfg.Kubelet
	maxLog, err := resource.ParseQuantity(k.ContainerLogMaxSize)
	if err != nil {
		return fmt.Errorf("containerLogMaxSize (--container-log-max-size): %w", err)
	}
	rot, err := logs.New(nodeLogs{p.rt, p.state}, logs.Config{MaxSize: maxLog.Value(),
		MaxFiles: int(*k.ContainerLogMaxFiles), Interval: k.ContainerLogMonitorInterval.Duration,
		SymlinkDir: p.cfg.ContainerLogsDir, PodLogsDir: k.PodLogsDir})
	if err != nil {
		return err
	}
	p.add("log rotation", rot.Run)
	return nil
}

// kubeletAPI: the kubelet API (address:port, HTTPS): logs, exec/attach/port-forward,
// metrics, stats. Its serving certificate: with serverTLSBootstrap from a kubelet-serving
// CSR (its manager runs until Run returns), else tlsCertFile or self-signed.
func (p *parts) kubeletAPI(ctx context.Context) error {
	servingIPs := addressIPs(p.addrs, v1.NodeInternalIP, v1.NodeExternalIP)
	certCtx, stopCerts := context.WithCancel(ctx)
	p.closers = append(p.closers, stopCerts)
	serving, err := servingCertificate(certCtx, p.cfg, p.client, p.nodeName, p.hostname, servingIPs)
	if err != nil {
		return err
	}
	srv, err := server.New(server.Config{
		Stats:   p.stats,
		Kubelet: &p.cfg.Kubelet, NodeName: p.nodeName, Hostname: p.hostname, NodeIPs: servingIPs,
		CertDir: p.cfg.CertDir, Client: p.client, Runtime: serverRuntime{p.rt, p.state}, Pods: podsWithStatus(p.workers, p.statusMgr),
		Transitions: p.statusMgr.Trace.Handler(), ServingCertificate: serving,
		RootDir: p.cfg.RootDir, NodeLogDir: p.cfg.NodeLogDir,
	})
	if err != nil {
		return err
	}
	p.runners = append(p.runners, runner{name: "kubelet API server", run: srv.Run, critical: true})
	return nil
}

// imageGC: unused images removed when the image filesystem fills up, or when unused for
// longer than imageMaximumGCAge (upstream's image GC manager, every 5 minutes).
func (p *parts) imageGC(context.Context) error {
	k := &p.cfg.Kubelet
	gc, err := imagegc.New(imagegc.Config{Runtime: p.rt, ImageFs: p.stats, Recorder: p.recorder, Node: p.nodeRef(),
		Period: p.cfg.ImageGCPeriod, Policy: imagegc.Policy{
			HighThresholdPercent: int(*k.ImageGCHighThresholdPercent), LowThresholdPercent: int(*k.ImageGCLowThresholdPercent),
			MinAge: k.ImageMinimumGCAge.Duration, MaxAge: k.ImageMaximumGCAge.Duration}})
	if err != nil {
		return fmt.Errorf("image garbage collection: %w", err)
	}
	p.imageGCMgr = gc
	p.add("image garbage collection", gc.Run)
	return nil
}

// nodeRef is the node as the object of the kubelet's node events (upstream's
// nodeRefWithUID: the node's name as its UID).
func (p *parts) nodeRef() *v1.ObjectReference {
	return &v1.ObjectReference{Kind: "Node", Name: p.nodeName, UID: types.UID(p.nodeName)}
}
