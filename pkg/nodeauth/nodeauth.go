// Package nodeauth rides out the node authorizer's lag: the API server lets a node read a
// configMap or secret only once its graph links the object to a pod bound to that node,
// which happens a moment after the binding the kubelet has already seen. Reading such an
// object at once can be refused ("no relationship found between node ... and this
// object") although a read a few milliseconds later is allowed.
package nodeauth

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Settle is how long a refused read is retried: upstream's watch-based object cache waits
// up to a second for its reflector (which retries a refused list) before it reports the
// object as unavailable.
var Settle = time.Second

// Get calls get until the API server stops refusing it (Forbidden) or Settle has passed,
// and returns the last answer.
func Get[T any](ctx context.Context, get func(context.Context) (T, error)) (T, error) {
	var v T
	var err error
	_ = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, Settle, true, func(ctx context.Context) (bool, error) {
		v, err = get(ctx)
		return !apierrors.IsForbidden(err), nil
	})
	return v, err
}
