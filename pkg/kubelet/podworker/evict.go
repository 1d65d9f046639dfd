package podworker

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/minikubelet/minikubelet/pkg/kubelet/status"
)

// evictTimeout bounds how long Evict waits for the pod's containers to stop (upstream's
// podCleanupTimeout).
const evictTimeout = 30 * time.Second

// eviction is the eviction manager's order to stop a pod for good.
type eviction struct {
	grace  int64
	status status.Eviction
	done   chan struct{} // closed once the pod's containers have stopped
	once   sync.Once
}

func (e *eviction) finish() { e.once.Do(func() { close(e.done) }) }

// Evict stops the pod's containers within grace seconds (at least minGracePeriod, as
// upstream kills) and reports it Failed, reason Evicted, with message and condition. It
// returns once they have stopped; a second order for the same pod waits for the first.
func (w *Workers) Evict(ctx context.Context, pod *v1.Pod, grace int64, message string, condition *v1.PodCondition) error {
	wk := w.get(pod.UID, false)
	if wk == nil {
		return fmt.Errorf("pod %s/%s is not on this node", pod.Namespace, pod.Name)
	}
	ev := &eviction{grace: max(grace, minGracePeriod), status: status.Eviction{Message: message, Condition: condition}, done: make(chan struct{})}
	wk.mu.Lock()
	if wk.evict == nil {
		wk.evict = ev
	}
	ev = wk.evict
	wk.mu.Unlock()
	wk.kick()
	timer := time.NewTimer(evictTimeout)
	defer timer.Stop()
	select {
	case <-ev.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("pod %s/%s was not stopped within %v", pod.Namespace, pod.Name, evictTimeout)
	}
}
