// Package informer holds what minikubelet's informer users share.
package informer

import (
	"time"

	"k8s.io/client-go/informers"
)

// ShutdownWithin waits for the factory's informers to stop, at most d. Their context is
// already cancelled; but client-go's reflector sleeps through its list/watch back-off
// without watching the context, and with an unreachable API server that can be many
// seconds, which must not hold up a SIGTERM. The informers end on their own afterwards.
func ShutdownWithin(f informers.SharedInformerFactory, d time.Duration) {
	done := make(chan struct{})
	go func() {
		f.Shutdown()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(d):
	}
}
