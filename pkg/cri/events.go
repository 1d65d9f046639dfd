package cri

import (
	"context"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
)

// EventKind is what a runtime event says happened.
type EventKind int

// Event kinds. Only exits need the runtime to be asked again: starts and creations are
// the kubelet's own doing, and OOM and delete events follow or precede an exit.
const (
	// EventSubscribed: a (new) subscription started; anything may have been missed before.
	EventSubscribed EventKind = iota
	// EventExit: a container's (or sandbox's) main process exited.
	EventExit
	// EventOther: any other task event (create, start, OOM, delete, exec processes).
	EventOther
)

// Event is one runtime event about a container or sandbox (they share one ID space).
type Event struct {
	Kind EventKind
	ID   string // container or sandbox ID; "" for EventSubscribed
}

// WatchEvents streams containerd's own task events for the CRI namespace and calls notify
// for each, within milliseconds of the event. containerd 1.6 has no CRI
// GetContainerEvents, but serves its event service on the same socket. After an error
// (containerd restarting) it subscribes again with back-off, calling notify with
// EventSubscribed on every new subscription so that nothing missed in between goes
// unnoticed. It returns when ctx ends.
func (c *Client) WatchEvents(ctx context.Context, notify func(Event)) {
	logger := klog.FromContext(ctx)
	events := eventsapi.NewEventsClient(c.rtConn)
	reset := func() wait.Backoff {
		return wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Cap: time.Second, Steps: 1 << 30}
	}
	backoff := reset()
	for ctx.Err() == nil {
		// WaitForReady: while the runtime is down the call waits for the connection to come
		// back instead of failing, so the stream is subscribed again the moment it does.
		stream, err := events.Subscribe(ctx, &eventsapi.SubscribeRequest{
			Filters: []string{`namespace==k8s.io,topic~="^/tasks/"`},
		}, grpc.WaitForReady(true))
		if err == nil {
			notify(Event{Kind: EventSubscribed})
			for {
				env, rerr := stream.Recv()
				if rerr != nil {
					err = rerr
					break
				}
				backoff = reset()
				notify(decodeEvent(env))
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

// decodeEvent keeps what the kubelet needs of a containerd envelope: exits of a task's
// main process (an exec process's exit has its own ID, and says nothing of the container).
func decodeEvent(env *eventsapi.Envelope) Event {
	if env.GetTopic() != "/tasks/exit" {
		return Event{Kind: EventOther}
	}
	var ex apievents.TaskExit
	if err := proto.Unmarshal(env.GetEvent().GetValue(), &ex); err != nil || ex.ContainerID == "" {
		return Event{Kind: EventOther}
	}
	if ex.ID != "" && ex.ID != ex.ContainerID {
		return Event{Kind: EventOther, ID: ex.ContainerID}
	}
	return Event{Kind: EventExit, ID: ex.ContainerID}
}
