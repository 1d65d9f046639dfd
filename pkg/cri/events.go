package cri

import (
	"context"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	"google.golang.org/grpc"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
)

// WatchEvents streams containerd's own task events (start, exit, OOM, delete) for the CRI
// namespace and calls notify for each, within milliseconds of the event. containerd 1.6 has
// no CRI GetContainerEvents, but serves its event service on the same socket. After an
// error (containerd restarting) it subscribes again with back-off, calling notify once on
// every new subscription so that nothing missed in between goes unnoticed. It returns when
// ctx ends.
func (c *Client) WatchEvents(ctx context.Context, notify func(topic string)) {
	logger := klog.FromContext(ctx)
	events := eventsapi.NewEventsClient(c.rtConn)
	backoff := wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Cap: time.Second, Steps: 1 << 30}
	for ctx.Err() == nil {
		// WaitForReady: while the runtime is down the call waits for the connection to come
		// back instead of failing, so the stream is subscribed again the moment it does.
		stream, err := events.Subscribe(ctx, &eventsapi.SubscribeRequest{
			Filters: []string{`namespace==k8s.io,topic~="^/tasks/"`},
		}, grpc.WaitForReady(true))
		if err == nil {
			notify("subscribed")
			for {
				env, rerr := stream.Recv()
				if rerr != nil {
					err = rerr
					break
				}
				backoff = wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Cap: time.Second, Steps: 1 << 30}
				notify(env.GetTopic())
			}
		}
		if ctx.Err() != nil {
			return
		}
		d := backoff.Step()
		logger.V(2).Info("Runtime event stream interrupted; subscribing again", "err", err, "retryIn", d)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}
