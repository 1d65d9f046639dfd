package volume

import (
	"context"
	"sync"
)

// A refresh round reads each configMap and secret once, however many pods mount it: with
// 100 pods mounting kube-root-ca.crt that is one GET per period instead of 100, which
// matters when the node's API client is throttled (kubeAPIQPS). Set-up of a new pod never
// uses it, so a new pod always sees the object as it is now (as upstream's caches, which
// drop an object's cached copy when a pod that uses it is registered).

type roundKey struct{ kind, namespace, name string }

type roundEntry struct {
	once sync.Once
	data map[string][]byte
	err  error
}

type roundCache struct {
	mu      sync.Mutex
	entries map[roundKey]*roundEntry
}

type roundCacheKey struct{}

func withRoundCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, roundCacheKey{}, &roundCache{entries: map[roundKey]*roundEntry{}})
}

// readOnce returns get's result, shared by every read of the same object within the
// round that ctx belongs to (and read afresh outside a round). Errors are shared too: the
// object is read again next round.
func readOnce(ctx context.Context, kind, namespace, name string, get func() (map[string][]byte, error)) (map[string][]byte, error) {
	rc, _ := ctx.Value(roundCacheKey{}).(*roundCache)
	if rc == nil {
		return get()
	}
	rc.mu.Lock()
	e := rc.entries[roundKey{kind, namespace, name}]
	if e == nil {
		e = &roundEntry{}
		rc.entries[roundKey{kind, namespace, name}] = e
	}
	rc.mu.Unlock()
	e.once.Do(func() { e.data, e.err = get() })
	return e.data, e.err
}
