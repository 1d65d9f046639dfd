// Package source delivers the pods this node must run: from the API server (pods whose
// spec.nodeName is this node) and from static pod manifests (with their mirror pods).
package source

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/minikubelet/minikubelet/pkg/kubelet/informer"
)

// Handler receives pod changes, keyed by UID.
type Handler interface {
	Update(pod *v1.Pod)
	Remove(pod *v1.Pod)
}

// API watches pods bound to node and feeds them to h. HasSynced reports when the first
// list has been delivered (orphan cleanup waits for it). Mirror pods (the API's copies
// of static pods) are not delivered: MirrorChanged is called instead, and Mirrors lists
// them.
type API struct {
	factory       informers.SharedInformerFactory
	store         cache.Store
	HasSynced     cache.InformerSynced
	MirrorChanged func()
	// Changed, if set, sees every added or updated pod of the node, mirror pods too (the
	// status manager compares their status with what it wrote).
	Changed func(pod *v1.Pod)
}

// Mirrors lists the mirror pods bound to the node.
func (a *API) Mirrors() []*v1.Pod {
	var out []*v1.Pod
	for _, obj := range a.store.List() {
		if p, ok := obj.(*v1.Pod); ok && IsMirror(p) {
			out = append(out, p)
		}
	}
	return out
}

// Pod is the node's pod namespace/name as the informer holds it (nil: not there). It is
// the informer's own object: callers must not change it.
func (a *API) Pod(namespace, name string) *v1.Pod {
	obj, ok, err := a.store.GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil
	}
	p, _ := obj.(*v1.Pod)
	return p
}

// NewAPI sets up the informer; Start runs it.
func NewAPI(client kubernetes.Interface, node string, h Handler) (*API, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(informer.StripManagedFields),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
		}))
	inf := factory.Core().V1().Pods().Informer()
	a := &API{factory: factory, store: inf.GetStore()}
	mine := func(obj any) (*v1.Pod, bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		p, ok := obj.(*v1.Pod)
		if !ok || p.Spec.NodeName != node { // guard: never act on another node's pod
			return nil, false
		}
		if IsMirror(p) {
			if a.MirrorChanged != nil {
				a.MirrorChanged()
			}
			return nil, false
		}
		return p, true
	}
	changed := func(obj any) {
		if p, ok := obj.(*v1.Pod); ok && a.Changed != nil && p.Spec.NodeName == node {
			a.Changed(p)
		}
	}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p, ok := mine(obj); ok {
				h.Update(p)
			}
			changed(obj)
		},
		UpdateFunc: func(_, obj any) {
			if p, ok := mine(obj); ok {
				h.Update(p)
			}
			changed(obj)
		},
		DeleteFunc: func(obj any) {
			if p, ok := mine(obj); ok {
				h.Remove(p)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	// Synced once the handler (not just the informer's store) has been given every pod of
	// the first list: before that a pod still running would count as an orphan and be
	// killed (seen after an agent restart).
	a.HasSynced = reg.HasSynced
	return a, nil
}

// Run runs the informer until ctx ends.
func (a *API) Run(ctx context.Context) {
	a.factory.Start(ctx.Done())
	<-ctx.Done()
	informer.ShutdownWithin(a.factory, time.Second)
}
