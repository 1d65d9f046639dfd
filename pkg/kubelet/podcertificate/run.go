package podcertificate

import (
	"context"
	mathrand "math/rand/v2"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/kubelet/informer"
)

const (
	// A request we made that still is not in the informer cache after this long (plus
	// jitter) is assumed deleted, and made again.
	assumeDeletedThreshold = 10 * time.Minute
	// Past beginRefreshAt by this much, a certificate is overdue for refresh.
	refreshOverdueDuration = 10 * time.Minute
	// Every projection is looked at this often (jittered up to twice as long), which is
	// what starts refreshes.
	refreshPassPeriod = time.Minute
	// Upper bound of the jitter added to beginRefreshAt and abandon times, so that
	// projections issued together do not refresh together.
	maxJitter = 5 * time.Minute
)

func jitterDuration() time.Duration {
	return time.Duration(mathrand.Int64N(int64(maxJitter)))
}

// Run waits for the first Credentials call, then watches this node's PodCertificateRequests (an informer with field selector
// spec.nodeName=<NodeName>, as the node authorizer only allows that) and refreshes
// credentials when due, until ctx ends. It owns every goroutine it starts, and is to be
// called once.
func (m *Manager) Run(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-m.wanted:
	}
	logger := klog.FromContext(ctx)
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[projectionKey]())
	// Any change to a pod's request may be the one its projections wait for.
	reg, err := m.pcrs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { m.enqueueRequestPod(queue, obj) },
		UpdateFunc: func(_, obj any) { m.enqueueRequestPod(queue, obj) },
		DeleteFunc: func(obj any) { m.enqueueRequestPod(queue, obj) },
	})
	if err != nil {
		utilruntime.HandleErrorWithContext(ctx, err, "Pod certificate manager cannot watch PodCertificateRequests")
		queue.ShutDown()
		return
	}
	m.factory.Start(ctx.Done())
	logger.Info("Pod certificate manager started")

	var wg sync.WaitGroup
	if cache.WaitForCacheSync(ctx.Done(), m.pcrs.HasSynced) {
		wg.Go(func() {
			for m.processNext(ctx, queue) {
			}
		})
		wg.Go(func() { m.refreshPasses(ctx, queue) })
	}
	<-ctx.Done()
	queue.ShutDown()
	wg.Wait()
	_ = m.pcrs.RemoveEventHandler(reg)
	informer.ShutdownWithin(m.factory, time.Second)
	logger.Info("Pod certificate manager stopped")
}

// enqueueRequestPod queues the projections of the pod a PodCertificateRequest is for.
func (m *Manager) enqueueRequestPod(queue workqueue.TypedInterface[projectionKey], obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pcr, ok := obj.(*certificatesv1.PodCertificateRequest)
	if !ok || pcr.Spec.PodUID == "" {
		return
	}
	for _, k := range m.keys(pcr.Spec.PodUID) {
		queue.Add(k)
	}
}

// refreshPasses queues every projection every minute or two, as upstream does: that is
// when fresh certificates past beginRefreshAt get their refresh request, and when
// requests that vanished are noticed.
func (m *Manager) refreshPasses(ctx context.Context, queue workqueue.TypedInterface[projectionKey]) {
	for {
		t := m.clock.NewTimer(wait.Jitter(refreshPassPeriod, 1.0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		for _, k := range m.keys("") {
			queue.Add(k)
		}
	}
}

// processNext advances one queued projection; errors are retried with back-off.
func (m *Manager) processNext(ctx context.Context, queue workqueue.TypedRateLimitingInterface[projectionKey]) bool {
	k, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(k)

	rec := m.lookup(k)
	if rec == nil { // forgotten
		queue.Forget(k)
		return true
	}
	rec.mu.Lock()
	err := m.step(ctx, k, rec)
	rec.mu.Unlock()
	if err != nil {
		utilruntime.HandleErrorWithContext(ctx, err, "While handling podCertificate projected volume source",
			"podUID", k.podUID, "volume", k.volume, "sourceIndex", k.index)
		queue.AddRateLimited(k)
		return true
	}
	queue.Forget(k)
	return true
}
