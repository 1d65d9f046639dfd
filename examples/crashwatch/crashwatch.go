// Package crashwatch is a small controller, the example the minikubelet test kit (package
// github.com/minikubelet/minikubelet/kit) tests: it watches pods labelled
// crashwatch.example.com/watch=true and tells their owners how they do. It annotates each
// pod with crashwatch.example.com/state (Healthy, NotReady or CrashLoopBackOff) and records
// an Event when a pod enters CrashLoopBackOff (reason CrashLooping) or turns not ready
// (reason BecameNotReady).
package crashwatch

import (
	"context"
	"encoding/json"
	"fmt"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

const (
	// Label marks the pods to watch (value "true").
	Label = "crashwatch.example.com/watch"
	// Annotation holds a watched pod's state.
	Annotation = "crashwatch.example.com/state"

	Healthy          = "Healthy"
	NotReady         = "NotReady"
	CrashLoopBackOff = "CrashLoopBackOff"
	// Pending: not running yet; not annotated.
	Pending = ""
)

// State classifies a pod: CrashLoopBackOff if any container waits in it, NotReady if it
// runs but its Ready condition is not True, Healthy if it is Ready, else Pending.
func State(p *v1.Pod) string {
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff" {
			return CrashLoopBackOff
		}
	}
	if p.Status.Phase != v1.PodRunning {
		return Pending
	}
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodReady && c.Status == v1.ConditionTrue {
			return Healthy
		}
	}
	return NotReady
}

// Controller keeps the watched pods' annotation up to date.
type Controller struct {
	client   kubernetes.Interface
	factory  informers.SharedInformerFactory
	pods     cache.SharedIndexInformer
	queue    workqueue.TypedRateLimitingInterface[string]
	recorder record.EventRecorder
}

// New makes a controller for the labelled pods of every namespace.
func New(client kubernetes.Interface) *Controller {
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = Label + "=true"
	}))
	b := record.NewBroadcaster()
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	c := &Controller{client: client, factory: f, pods: f.Core().V1().Pods().Informer(),
		queue:    workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		recorder: b.NewRecorder(scheme.Scheme, v1.EventSource{Component: "crashwatch"})}
	enqueue := func(o any) {
		if key, err := cache.MetaNamespaceKeyFunc(o); err == nil {
			c.queue.Add(key)
		}
	}
	_, _ = c.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }})
	return c
}

// Run works until ctx ends.
func (c *Controller) Run(ctx context.Context) {
	defer c.queue.ShutDown()
	c.factory.Start(ctx.Done())
	cache.WaitForCacheSync(ctx.Done(), c.pods.HasSynced)
	go func() {
		for c.next(ctx) {
		}
	}()
	<-ctx.Done()
}

func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	if err := c.sync(ctx, key); err != nil {
		c.queue.AddRateLimited(key)
		return true
	}
	c.queue.Forget(key)
	return true
}

// sync annotates the pod with its state when it changed, with an Event on the way into
// CrashLoopBackOff or NotReady.
func (c *Controller) sync(ctx context.Context, key string) error {
	o, exists, err := c.pods.GetIndexer().GetByKey(key)
	if err != nil || !exists {
		return err
	}
	p := o.(*v1.Pod)
	state := State(p)
	if state == Pending || p.Annotations[Annotation] == state {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{Annotation: state}}})
	if _, err := c.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("annotate %s: %w", key, err)
	}
	switch state {
	case CrashLoopBackOff:
		c.recorder.Event(p, v1.EventTypeWarning, "CrashLooping", "a container of the pod is in CrashLoopBackOff")
	case NotReady:
		c.recorder.Event(p, v1.EventTypeWarning, "BecameNotReady", "the pod runs but is not ready")
	}
	return nil
}
