package cri

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/util/wait"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
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

// Event sources, as EventSource names them.
const (
	// EventSourceCRI is CRI's GetContainerEvents stream (containerd 2.x, CRI-O).
	EventSourceCRI = "cri"
	// EventSourceContainerd is containerd's own event service (containerd 1.6, which has
	// no GetContainerEvents but serves that service on the CRI socket).
	EventSourceContainerd = "containerd"
)

// eventState is what WatchEvents tells of its stream.
type eventState struct {
	source atomic.Pointer[string]
}

// EventSource names the stream WatchEvents reads (EventSourceCRI or
// EventSourceContainerd); "" until it has subscribed.
func (c *Client) EventSource() string {
	if s := c.events.source.Load(); s != nil {
		return *s
	}
	return ""
}

// setEventSource records the stream in use, logging the first choice and any change.
func (c *Client) setEventSource(logger klog.Logger, src string) {
	if old := c.events.source.Swap(&src); old == nil || *old != src {
		logger.Info("Watching container runtime events", "source", src)
	}
}

// criStreamSettle: how long an open CRI event stream with no event must have stayed open
// to count as served (a runtime without it refuses it at once, on the first Recv).
var criStreamSettle = time.Second

// WatchEvents streams the runtime's container events and calls notify for each, within
// milliseconds of the event. It reads CRI's GetContainerEvents, unless the runtime answers
// it Unimplemented (containerd 1.6): then containerd's own task events. After an error
// (the runtime restarting) it subscribes again with back-off, calling notify with
// EventSubscribed on every new subscription so that nothing missed in between goes
// unnoticed. It returns when ctx ends.
func (c *Client) WatchEvents(ctx context.Context, notify func(Event)) {
	logger := klog.FromContext(ctx)
	reset := func() wait.Backoff {
		return wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Cap: time.Second, Steps: 1 << 30}
	}
	backoff := reset()
	received := func() { backoff = reset() }
	native := false // the runtime refused the CRI stream
	for ctx.Err() == nil {
		var err error
		if native {
			err = c.watchContainerd(ctx, notify, received)
		} else if err = c.watchCRI(ctx, notify, received); errdefs.IsNotImplemented(err) {
			logger.V(1).Info("Runtime has no CRI container events; using containerd's event service", "err", err)
			native = true
			continue
		}
		if ctx.Err() != nil {
			return
		}
		d := backoff.Step()
		logger.V(2).Info("Runtime event stream interrupted; subscribing again", "source", c.EventSource(), "err", err, "retryIn", d)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

// watchCRI reads CRI's event stream until it breaks. The stream counts as subscribed
// (EventSubscribed, EventSource "cri") at its first event or once it has stayed open for
// criStreamSettle, so a runtime refusing it causes no spurious relist.
func (c *Client) watchCRI(ctx context.Context, notify func(Event), received func()) error {
	// WaitForReady: while the runtime is down the call waits for the connection to come
	// back instead of failing, so the stream is subscribed again the moment it does.
	stream, err := c.runtime.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return errgrpc.ToNative(err)
	}
	subscribed := sync.OnceFunc(func() {
		c.setEventSource(klog.FromContext(ctx), EventSourceCRI)
		notify(Event{Kind: EventSubscribed})
	})
	settle := time.AfterFunc(criStreamSettle, subscribed)
	defer func() {
		if !settle.Stop() {
			subscribed() // the timer's call is under way: wait for it to end
		}
	}()
	for {
		ev, err := stream.Recv()
		if err != nil {
			return errgrpc.ToNative(err)
		}
		subscribed()
		received()
		notify(criEvent(ev))
	}
}

// criEvent keeps what the kubelet needs of a CRI event: stops. containerd 2.x also sends
// them for sandboxes, with the sandbox's ID as ContainerId (its handleSandboxExit).
func criEvent(ev *runtimeapi.ContainerEventResponse) Event {
	id := ev.GetContainerId()
	if ev.GetContainerEventType() == runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT && id != "" {
		return Event{Kind: EventExit, ID: id}
	}
	return Event{Kind: EventOther, ID: id}
}

// watchContainerd reads containerd's task events for the CRI namespace until the stream
// breaks.
func (c *Client) watchContainerd(ctx context.Context, notify func(Event), received func()) error {
	stream, err := eventsapi.NewEventsClient(c.rtConn).Subscribe(ctx, &eventsapi.SubscribeRequest{
		Filters: []string{`namespace==k8s.io,topic~="^/tasks/"`},
	}, grpc.WaitForReady(true))
	if err != nil {
		return errgrpc.ToNative(err)
	}
	c.setEventSource(klog.FromContext(ctx), EventSourceContainerd)
	notify(Event{Kind: EventSubscribed})
	for {
		env, err := stream.Recv()
		if err != nil {
			return errgrpc.ToNative(err)
		}
		received()
		notify(decodeEvent(env))
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
