// Package node keeps this machine's Node object alive in the API: registration (and
// re-registration when the Node is deleted), node status with upstream's conditions and
// reasons, and the Lease heartbeat in kube-node-lease.
package node

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/component-helpers/apimachinery/lease"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/minikubelet/minikubelet/pkg/cri"
	"github.com/minikubelet/minikubelet/pkg/kubelet/informer"
)

// RuntimeStatus is what the node needs from the container runtime.
type RuntimeStatus interface {
	// Ready returns nil when the runtime and its network are ready, else upstream-style
	// messages saying why not.
	Ready(ctx context.Context) []string
	// Version is the runtime's "name://version", e.g. "containerd://1.6.20".
	Version(ctx context.Context) (string, error)
}

// RuntimeHandlers are the runtime's handlers as its last ready Status listed them
// (cri.HandlerState, kept by the Ready poll).
type RuntimeHandlers interface {
	Known() bool
	Handlers() []cri.RuntimeHandler
	Features() *cri.RuntimeFeatures
}

// Config is what a Controller needs; New rejects missing fields.
type Config struct {
	Client kubernetes.Interface
	// HeartbeatClient posts node status and renews the Lease (default: Client). As
	// upstream's, it should not be rate-limited, so that a node whose other API traffic is
	// throttled (kubeAPIQPS) still heartbeats in time and is not marked NotReady.
	HeartbeatClient kubernetes.Interface
	Runtime         RuntimeStatus
	Recorder        record.EventRecorder
	NodeName        string
	Hostname        string
	Addresses       []v1.NodeAddress
	Labels          map[string]string // extra labels (--node-labels)
	Taints          []v1.Taint
	MaxPods         int32
	Reserved        v1.ResourceList
	KubeletPort     int32
	KubeletVersion  string
	Machine         Machine
	// PressureFunc measures resource pressure each status round (nil: none).
	PressureFunc func() Pressure
	// Handlers are reported in status.runtimeHandlers (nil: none reported).
	Handlers RuntimeHandlers
	// VolumesInUse lists the attachable volumes mounted on the node, for
	// status.volumesInUse (nil: the API's value is kept).
	VolumesInUse func() []v1.UniqueVolumeName
	// Images lists the runtime's images for status.images (nil: the API's value is kept);
	// MaxImages is nodeStatusMaxImages (-1: all of them).
	Images    func(context.Context) ([]*runtimeapi.Image, error)
	MaxImages int32
	// Nodes is an informer on this node only, which its owner starts (nil: the controller
	// watches its node with an informer of its own).
	Nodes coreinformers.NodeInformer

	UpdateFrequency      time.Duration // compute status (default 10s)
	ReportFrequency      time.Duration // post even if unchanged (default 5m)
	RuntimePollFrequency time.Duration // runtime readiness poll (default 5s)
	LeaseDurationSeconds int32         // default 40; renewed every quarter of it
	Clock                clock.WithTicker
}

// Controller owns the Node object and the Lease.
type Controller struct {
	cfg    Config
	wake   chan struct{} // cap 1: run a status round now
	lister corelisters.NodeLister
	images imageList // touched by the status rounds only

	mu            sync.Mutex
	runtimeErrors []string
	runtimeKnown  bool

	registered  bool
	lastPosted  *v1.NodeStatus
	lastReport  time.Time
	runtimeVers string
}

const leaseNamespace = "kube-node-lease"

// New checks cfg and fills defaults.
func New(cfg Config) (*Controller, error) {
	var missing []string
	if cfg.Client == nil {
		missing = append(missing, "Client")
	}
	if cfg.Runtime == nil {
		missing = append(missing, "Runtime")
	}
	if cfg.Recorder == nil {
		missing = append(missing, "Recorder")
	}
	if cfg.NodeName == "" {
		missing = append(missing, "NodeName")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("node controller: missing %v", missing)
	}
	if cfg.Hostname == "" {
		cfg.Hostname = cfg.NodeName
	}
	if cfg.HeartbeatClient == nil {
		cfg.HeartbeatClient = cfg.Client
	}
	if cfg.UpdateFrequency <= 0 {
		cfg.UpdateFrequency = 10 * time.Second
	}
	if cfg.ReportFrequency <= 0 {
		cfg.ReportFrequency = 5 * time.Minute
	}
	if cfg.RuntimePollFrequency <= 0 {
		cfg.RuntimePollFrequency = 5 * time.Second
	}
	if cfg.LeaseDurationSeconds <= 0 {
		cfg.LeaseDurationSeconds = 40
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.PressureFunc == nil {
		cfg.PressureFunc = func() Pressure { return Pressure{} }
	}
	return &Controller{cfg: cfg, wake: make(chan struct{}, 1), images: imageList{list: cfg.Images, max: cfg.MaxImages}}, nil
}

func (c *Controller) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run registers the node and keeps its status and Lease up to date until ctx ends.
// API errors never end it: they are retried with back-off.
func (c *Controller) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	c.cfg.Recorder.Eventf(c.ref(), v1.EventTypeNormal, "Starting", "Starting kubelet.")

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Our own Node, watched so that a deletion is noticed (and repaired) at once.
	inf := c.cfg.Nodes
	if inf == nil {
		factory := NodeInformerFactory(c.cfg.Client, c.cfg.NodeName)
		inf = factory.Core().V1().Nodes()
		inf.Informer() // registered before the start
		factory.Start(ctx.Done())
		defer informer.ShutdownWithin(factory, time.Second)
	}
	c.lister = inf.Lister()
	if _, err := inf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(any) { c.kick() },
	}); err != nil {
		return err
	}

	renew := time.Duration(c.cfg.LeaseDurationSeconds) * time.Second / 4
	lc := lease.NewController(c.cfg.Clock, c.cfg.HeartbeatClient, c.cfg.NodeName, c.cfg.LeaseDurationSeconds,
		nil, renew, c.cfg.NodeName, leaseNamespace, c.setLeaseOwner)
	wg.Go(func() { lc.Run(ctx) })
	wg.Go(func() { c.pollRuntime(ctx) })

	backoff := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 1 << 30, Cap: 7 * time.Second}
	delay := time.Duration(0)
	for {
		timer := c.cfg.Clock.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C():
		case <-c.wake:
			timer.Stop()
		}
		if err := c.sync(ctx); err != nil {
			delay = backoff.Step()
			logger.Error(err, "Node status sync failed; retrying", "node", c.cfg.NodeName, "retryIn", delay)
			continue
		}
		backoff = wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 1 << 30, Cap: 7 * time.Second}
		delay = c.cfg.UpdateFrequency
	}
}

// pollRuntime keeps the runtime's readiness current and wakes the status loop when it
// changes, so NotReady/Ready is posted within a poll period rather than a status period.
func (c *Controller) pollRuntime(ctx context.Context) {
	t := c.cfg.Clock.NewTicker(c.cfg.RuntimePollFrequency)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.RuntimePollFrequency)
		errs := c.cfg.Runtime.Ready(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		changed := !c.runtimeKnown || fmt.Sprint(errs) != fmt.Sprint(c.runtimeErrors)
		c.runtimeErrors, c.runtimeKnown = errs, true
		c.mu.Unlock()
		if changed {
			klog.FromContext(ctx).Info("Container runtime readiness changed", "errors", errs)
			c.kick()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

func (c *Controller) currentRuntimeErrors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.runtimeKnown {
		return []string{"container runtime status check may not have completed yet"}
	}
	return c.runtimeErrors
}

// sync makes sure the Node exists and posts its status when it changed or a report is due.
func (c *Controller) sync(ctx context.Context) error {
	if c.runtimeVers == "" {
		if v, err := c.cfg.Runtime.Version(ctx); err == nil {
			c.runtimeVers = v
		}
	}
	nodes := c.cfg.HeartbeatClient.CoreV1().Nodes()
	var node *v1.Node
	if c.registered {
		n, err := nodes.Get(ctx, c.cfg.NodeName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			klog.FromContext(ctx).Info("Node object is gone; registering again", "node", c.cfg.NodeName)
			c.registered, c.lastPosted = false, nil
		case err != nil:
			return fmt.Errorf("get node: %w", err)
		default:
			node = n
		}
	}
	if !c.registered {
		n, err := c.register(ctx)
		if err != nil {
			return err
		}
		node, c.registered = n, true
	}

	now := c.cfg.Clock.Now()
	status := BuildStatus(c.inputs(ctx, now), node.Status, metav1.NewTime(now))
	if c.lastPosted != nil && !StatusChanged(*c.lastPosted, status) && now.Sub(c.lastReport) < c.cfg.ReportFrequency {
		return nil
	}
	updated, err := c.patchStatus(ctx, node, status)
	if err != nil {
		return err
	}
	for _, reason := range conditionEvents(node.Status.Conditions, updated.Status.Conditions) {
		c.cfg.Recorder.Eventf(c.ref(), v1.EventTypeNormal, reason, "Node %s status is now: %s", c.cfg.NodeName, reason)
	}
	c.lastPosted, c.lastReport = &updated.Status, now
	return nil
}

func (c *Controller) inputs(ctx context.Context, now time.Time) StatusInputs {
	in := StatusInputs{
		Machine:        c.cfg.Machine,
		Addresses:      c.cfg.Addresses,
		MaxPods:        c.cfg.MaxPods,
		Reserved:       c.cfg.Reserved,
		RuntimeVersion: c.runtimeVers,
		KubeletVersion: c.cfg.KubeletVersion,
		KubeletPort:    c.cfg.KubeletPort,
		RuntimeErrors:  c.currentRuntimeErrors(),
		Pressure:       c.cfg.PressureFunc(),
	}
	if f := c.cfg.VolumesInUse; f != nil {
		in.VolumesInUse, in.VolumesInUseKnown = f(), true
	}
	in.Images, in.ImagesKnown = c.images.get(ctx, now)
	if h := c.cfg.Handlers; h != nil && h.Known() {
		in.RuntimeHandlers, in.RuntimeHandlersKnown = h.Handlers(), true
		in.RuntimeFeatures = h.Features()
	}
	return in
}

// Labels are the labels this kubelet gives its Node: hostname, OS and architecture (also
// the beta names), then the configured ones (--node-labels).
func Labels(hostname string, m Machine, configured map[string]string) map[string]string {
	labels := map[string]string{
		v1.LabelHostname:          hostname,
		v1.LabelOSStable:          m.OperatingSystem,
		v1.LabelArchStable:        m.Architecture,
		"beta.kubernetes.io/os":   m.OperatingSystem,
		"beta.kubernetes.io/arch": m.Architecture,
	}
	for k, v := range configured {
		labels[k] = v
	}
	return labels
}

// InitialNode is the Node object this kubelet registers.
func (c *Controller) InitialNode() *v1.Node {
	labels := Labels(c.cfg.Hostname, c.cfg.Machine, c.cfg.Labels)
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        c.cfg.NodeName,
			Labels:      labels,
			Annotations: map[string]string{"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
		},
		Spec: v1.NodeSpec{Taints: c.cfg.Taints},
	}
}

// register creates the Node, or adopts an existing one with our labels reconciled (as
// upstream: taints of an existing node are left to whoever manages them since).
func (c *Controller) register(ctx context.Context) (*v1.Node, error) {
	want := c.InitialNode()
	nodes := c.cfg.Client.CoreV1().Nodes()
	created, err := nodes.Create(ctx, want, metav1.CreateOptions{})
	if err == nil {
		klog.FromContext(ctx).Info("Registered node", "node", c.cfg.NodeName)
		return created, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("register node: %w", err)
	}
	existing, err := nodes.Get(ctx, c.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get existing node: %w", err)
	}
	merged := existing.DeepCopy()
	if merged.Labels == nil {
		merged.Labels = map[string]string{}
	}
	if merged.Annotations == nil {
		merged.Annotations = map[string]string{}
	}
	for k, v := range want.Labels {
		merged.Labels[k] = v
	}
	for k, v := range want.Annotations {
		merged.Annotations[k] = v
	}
	patch, err := twoWayPatch(existing, merged)
	if err != nil || patch == nil {
		return existing, err
	}
	out, err := nodes.Patch(ctx, c.cfg.NodeName, types.StrategicMergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return nil, fmt.Errorf("reconcile existing node: %w", err)
	}
	klog.FromContext(ctx).Info("Node was already registered; reconciled its labels", "node", c.cfg.NodeName)
	return out, nil
}

func (c *Controller) patchStatus(ctx context.Context, node *v1.Node, status v1.NodeStatus) (*v1.Node, error) {
	want := node.DeepCopy()
	want.Status = status
	patch, err := twoWayPatch(node, want)
	if err != nil {
		return nil, err
	}
	if patch == nil {
		return node, nil
	}
	out, err := c.cfg.HeartbeatClient.CoreV1().Nodes().Patch(ctx, c.cfg.NodeName, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		if apierrors.IsNotFound(err) {
			c.registered = false
		}
		return nil, fmt.Errorf("patch node status: %w", err)
	}
	return out, nil
}

// twoWayPatch returns the strategic merge patch from old to new, or nil if there is none.
func twoWayPatch(old, new *v1.Node) ([]byte, error) {
	o, err := json.Marshal(old)
	if err != nil {
		return nil, err
	}
	n, err := json.Marshal(new)
	if err != nil {
		return nil, err
	}
	p, err := strategicpatch.CreateTwoWayMergePatch(o, n, v1.Node{})
	if err != nil {
		return nil, fmt.Errorf("node patch: %w", err)
	}
	if string(p) == "{}" {
		return nil, nil
	}
	return p, nil
}

// NodeInformerFactory makes informers that see only the Node named name, without
// managedFields.
func NodeInformerFactory(client kubernetes.Interface, name string) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(informer.StripManagedFields),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}))
}

// setLeaseOwner makes the Node own its Lease, so deleting the Node collects the Lease.
// A Node not yet known leaves the Lease unowned until the next renewal, as upstream does.
func (c *Controller) setLeaseOwner(l *coordinationv1.Lease) error {
	if len(l.OwnerReferences) > 0 {
		return nil
	}
	node, err := c.lister.Get(c.cfg.NodeName)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	l.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
	}}
	return nil
}

// ref is the object reference upstream uses for node events (UID = node name).
func (c *Controller) ref() *v1.ObjectReference {
	return &v1.ObjectReference{Kind: "Node", Name: c.cfg.NodeName, UID: types.UID(c.cfg.NodeName)}
}
