package cri

import (
	"context"
	"errors"
	"io"
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
	// EventExitRecorded: the runtime has dealt with an exit and its CRI state shows it now
	// (or a moment later): containerd 1.6's CRI plugin deletes an exited task and then
	// records the exit, so the task's delete event follows the exit by the runc call's
	// tens of milliseconds.
	EventExitRecorded
	// EventOther: any other task event (create, start, OOM, delete, exec processes).
	EventOther
	// EventUnavailable: the runtime serves no event stream; WatchEvents has returned and
	// relists are the only source of changes from here on.
	EventUnavailable
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
	// EventSourceNone: the runtime serves neither (or closes CRI's at once every time, as
	// CRI-O does with enable_pod_events off).
	EventSourceNone = "none"
)

// eventState is what WatchEvents tells of its stream.
type eventState struct {
	source atomic.Pointer[string]
}

// EventSource names the stream WatchEvents reads (EventSourceCRI, EventSourceContainerd
// or EventSourceNone); "" until it has subscribed or given up.
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

// streamSettle: how long an open event stream with no event must have stayed open to
// count as served (a runtime without it refuses it at once, on the first Recv).
var streamSettle = time.Second

// criClosedRetries is how many CRI streams in a row the runtime may close cleanly before
// they settle until WatchEvents takes it that the runtime serves none (upstream's evented
// PLEG gives up after as many retries and relists instead).
const criClosedRetries = 5

// WatchEvents streams the runtime's container events and calls notify for each, within
// milliseconds of the event. It reads CRI's GetContainerEvents, unless the runtime answers
// it Unimplemented (containerd 1.6): then containerd's own task events. After an error
// (the runtime restarting) it subscribes again with back-off, calling notify with
// EventSubscribed on every new subscription so that nothing missed in between goes
// unnoticed. A runtime that serves neither stream gets EventUnavailable, and WatchEvents
// returns. Otherwise it returns when ctx ends.
func (c *Client) WatchEvents(ctx context.Context, notify func(Event)) {
	logger := klog.FromContext(ctx)
	reset := func() wait.Backoff {
		return wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Cap: time.Second, Steps: 1 << 30}
	}
	backoff := reset()
	received := func() { backoff = reset() }
	native := false // the runtime refused the CRI stream
	closed := 0     // CRI streams in a row the runtime closed before they settled
	for ctx.Err() == nil {
		var err error
		var settled bool
		if native {
			if settled, err = c.watchContainerd(ctx, notify, received); errdefs.IsNotImplemented(err) && !settled {
				c.noEvents(logger, notify, err)
				return
			}
		} else if settled, err = c.watchCRI(ctx, notify, received); errdefs.IsNotImplemented(err) {
			logger.V(1).Info("Runtime has no CRI container events; using containerd's event service", "err", err)
			native = true
			continue
		} else if settled || !errors.Is(err, io.EOF) {
			closed = 0
		} else if closed++; closed >= criClosedRetries && c.EventSource() == "" {
			c.noEvents(logger, notify, err)
			return
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

// noEvents records and reports a runtime that serves no event stream.
func (c *Client) noEvents(logger klog.Logger, notify func(Event), err error) {
	logger.Info("Container runtime serves no container events; relying on relists", "err", err)
	c.setEventSource(logger, EventSourceNone)
	notify(Event{Kind: EventUnavailable})
}

// watchCRI reads CRI's event stream until it breaks; settled: see settling.
func (c *Client) watchCRI(ctx context.Context, notify func(Event), received func()) (settled bool, _ error) {
	// WaitForReady: while the runtime is down the call waits for the connection to come
	// back instead of failing, so the stream is subscribed again the moment it does.
	stream, err := c.runtime.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return false, errgrpc.ToNative(err)
	}
	mark, done := c.settling(ctx, EventSourceCRI, notify)
	for {
		ev, err := stream.Recv()
		if err != nil {
			if err != io.EOF { // io.EOF: the runtime closed it cleanly (ToNative would hide that)
				err = errgrpc.ToNative(err)
			}
			return done(), err
		}
		mark()
		received()
		notify(criEvent(ev))
	}
}

// settling: a stream counts as subscribed (EventSubscribed, EventSource src) at its first
// event or once it has stayed open for streamSettle, since a runtime without it refuses
// it only on the first Recv and that must cause no spurious relist. Call mark at each
// event and done when the stream has ended; done tells whether it had settled.
func (c *Client) settling(ctx context.Context, src string, notify func(Event)) (mark func(), done func() bool) {
	settled := false
	mark = sync.OnceFunc(func() {
		settled = true
		c.setEventSource(klog.FromContext(ctx), src)
		notify(Event{Kind: EventSubscribed})
	})
	timer := time.AfterFunc(streamSettle, mark)
	return mark, func() bool {
		if !timer.Stop() {
			mark() // the timer's call may be under way: wait for it to end
		}
		return settled
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
// breaks; settled: see settling.
func (c *Client) watchContainerd(ctx context.Context, notify func(Event), received func()) (settled bool, _ error) {
	stream, err := eventsapi.NewEventsClient(c.rtConn).Subscribe(ctx, &eventsapi.SubscribeRequest{
		Filters: []string{`namespace==k8s.io,topic~="^/tasks/"`},
	}, grpc.WaitForReady(true))
	if err != nil {
		return false, errgrpc.ToNative(err)
	}
	mark, done := c.settling(ctx, EventSourceContainerd, notify)
	for {
		env, err := stream.Recv()
		if err != nil {
			return done(), errgrpc.ToNative(err)
		}
		mark()
		received()
		notify(decodeEvent(env))
	}
}

// decodeEvent keeps what the kubelet needs of a containerd envelope: exits of a task's
// main process and the deletes of such tasks (an exec process's exit has its own ID, and
// says nothing of the container).
func decodeEvent(env *eventsapi.Envelope) Event {
	var container, process string
	var kind EventKind
	switch env.GetTopic() {
	case "/tasks/exit":
		var ex apievents.TaskExit
		if proto.Unmarshal(env.GetEvent().GetValue(), &ex) != nil {
			return Event{Kind: EventOther}
		}
		container, process, kind = ex.ContainerID, ex.ID, EventExit
	case "/tasks/delete":
		var del apievents.TaskDelete
		if proto.Unmarshal(env.GetEvent().GetValue(), &del) != nil {
			return Event{Kind: EventOther}
		}
		container, process, kind = del.ContainerID, del.ID, EventExitRecorded
	default:
		return Event{Kind: EventOther}
	}
	if container == "" {
		return Event{Kind: EventOther}
	}
	if process != "" && process != container {
		return Event{Kind: EventOther, ID: container}
	}
	return Event{Kind: kind, ID: container}
}
