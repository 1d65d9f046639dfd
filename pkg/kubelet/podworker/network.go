package podworker

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// Network is the runtime network's readiness as last polled (cri.NetworkState).
type Network interface {
	// Err is why the network is not ready; nil when ready.
	Err() error
	// OnReady calls f whenever the network becomes ready again.
	OnReady(f func())
}

// networkRetry is how soon a pod held back by the network is synced again: upstream's
// pod worker back-off after a failed sync (backOffPeriod). The network's return wakes
// held pods sooner.
const networkRetry = 10 * time.Second

// networkGate holds back a pod not on the host network while the runtime's network is
// not ready, as upstream's SyncPod (kubelet.go): the status as observed is written, a
// NetworkNotReady event says why, and nothing is set up, created, started or killed. Pods
// going away or finished are not held (upstream handles them before the check). It
// returns whether the pod is held, and when to sync again.
func (w *Workers) networkGate(ctx context.Context, wk *worker, p *pass) (time.Duration, bool) {
	if w.cfg.Network == nil || p.pod.Spec.HostNetwork || p.stopping() {
		return 0, false
	}
	err := w.cfg.Network.Err()
	if err == nil {
		return 0, false
	}
	st := w.podStatus(p.pod, p.state, w.stillWaiting(wk, p.state), false, false, nil)
	if st.Phase == v1.PodSucceeded || st.Phase == v1.PodFailed {
		return 0, false
	}
	w.cfg.Status.SetStatus(p.pod, st)
	// Upstream's NetworkNotReadyErrorMsg and its runtimeState.networkErrors.
	msg := fmt.Sprintf("network is not ready: %v", err)
	klog.FromContext(ctx).V(2).Info("Pod held back", "pod", klog.KObj(p.pod), "err", msg)
	w.event(p.pod, nil, v1.EventTypeWarning, "NetworkNotReady", "%s", msg)
	return networkRetry, true
}

// wakeAll makes every pod's worker sync now (the network is back).
func (w *Workers) wakeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, wk := range w.pods {
		wk.kick()
	}
}
