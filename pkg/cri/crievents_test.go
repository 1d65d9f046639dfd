package cri

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	eventsapi "github.com/containerd/containerd/api/services/events/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// eventsRuntime serves GetContainerEvents: its n-th call (from 0) runs serve(n, stream).
// With serve nil the method is left Unimplemented, as containerd 1.6 answers it.
type eventsRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	calls atomic.Int32
	serve func(n int, s runtimeapi.RuntimeService_GetContainerEventsServer) error
}

func (r *eventsRuntime) GetContainerEvents(req *runtimeapi.GetEventsRequest, s runtimeapi.RuntimeService_GetContainerEventsServer) error {
	if r.serve == nil {
		return r.UnimplementedRuntimeServiceServer.GetContainerEvents(req, s)
	}
	return r.serve(int(r.calls.Add(1)-1), s)
}

// containerdEvents is containerd's event service, sending envs to each subscriber.
type containerdEvents struct {
	eventsapi.UnimplementedEventsServer
	envs []*eventsapi.Envelope
}

func (e *containerdEvents) Subscribe(_ *eventsapi.SubscribeRequest, s eventsapi.Events_SubscribeServer) error {
	for _, env := range e.envs {
		if err := s.Send(env); err != nil {
			return err
		}
	}
	<-s.Context().Done()
	return nil
}

// serveCRI serves rt (and ev, if not nil) on a unix socket and returns a client of it.
func serveCRI(t *testing.T, rt runtimeapi.RuntimeServiceServer, ev eventsapi.EventsServer) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, rt)
	if ev != nil {
		eventsapi.RegisterEventsServer(srv, ev)
	}
	go func() { _ = srv.Serve(ln) }()
	c, err := Dial(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		srv.Stop()
	})
	return c
}

// watch runs WatchEvents against rt (and ev) and returns the client and the events it
// notifies.
func watch(t *testing.T, rt *eventsRuntime, ev *containerdEvents) (*Client, <-chan Event) {
	t.Helper()
	var c *Client
	if ev != nil {
		c = serveCRI(t, rt, ev)
	} else {
		c = serveCRI(t, rt, nil)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan Event, 100)
	var wg sync.WaitGroup
	wg.Go(func() { c.WatchEvents(ctx, func(e Event) { got <- e }) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return c, got
}

func expectEvents(t *testing.T, got <-chan Event, want ...Event) {
	t.Helper()
	for i, w := range want {
		select {
		case e := <-got:
			if e != w {
				t.Fatalf("event %d = %+v, want %+v", i, e, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d: none, want %+v", i, w)
		}
	}
}

func criStopped(id string) *runtimeapi.ContainerEventResponse {
	return &runtimeapi.ContainerEventResponse{ContainerId: id, ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT}
}

func TestWatchEventsCRI(t *testing.T) {
	rt := &eventsRuntime{serve: func(_ int, s runtimeapi.RuntimeService_GetContainerEventsServer) error {
		for _, ev := range []*runtimeapi.ContainerEventResponse{
			criStopped("c1"),
			criStopped("sb1"), // containerd 2.x: a sandbox's stop names the sandbox
			{ContainerId: "c2", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT},
			{ContainerId: "c1", ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT},
		} {
			if err := s.Send(ev); err != nil {
				return err
			}
		}
		<-s.Context().Done()
		return nil
	}}
	c, got := watch(t, rt, nil)
	expectEvents(t, got, Event{Kind: EventSubscribed}, Event{Kind: EventExit, ID: "c1"}, Event{Kind: EventExit, ID: "sb1"},
		Event{Kind: EventOther, ID: "c2"}, Event{Kind: EventOther, ID: "c1"})
	if s := c.EventSource(); s != EventSourceCRI {
		t.Errorf("EventSource = %q, want %q", s, EventSourceCRI)
	}
}

// A runtime without GetContainerEvents (containerd 1.6) refuses it on the first Recv: the
// kubelet reads containerd's own events, subscribed once.
func TestWatchEventsUnimplementedFallsBack(t *testing.T) {
	exit := func(id, execID string) *eventsapi.Envelope {
		b, err := proto.Marshal(&apievents.TaskExit{ContainerID: id, ID: execID})
		if err != nil {
			t.Fatal(err)
		}
		return &eventsapi.Envelope{Topic: "/tasks/exit", Event: &anypb.Any{TypeUrl: "containerd.events.TaskExit", Value: b}}
	}
	del := func(id, execID string) *eventsapi.Envelope {
		b, err := proto.Marshal(&apievents.TaskDelete{ContainerID: id, ID: execID})
		if err != nil {
			t.Fatal(err)
		}
		return &eventsapi.Envelope{Topic: "/tasks/delete", Event: &anypb.Any{TypeUrl: "containerd.events.TaskDelete", Value: b}}
	}
	c, got := watch(t, &eventsRuntime{}, &containerdEvents{envs: []*eventsapi.Envelope{
		exit("c1", "c1"), exit("c1", "exec1"), {Topic: "/tasks/start"}, del("c1", ""), del("c1", "exec1"),
		{Topic: "/tasks/delete", Event: &anypb.Any{Value: []byte{0xff}}},
	}})
	expectEvents(t, got, Event{Kind: EventSubscribed}, Event{Kind: EventExit, ID: "c1"}, Event{Kind: EventOther, ID: "c1"},
		Event{Kind: EventOther}, Event{Kind: EventExitRecorded, ID: "c1"}, Event{Kind: EventOther, ID: "c1"}, Event{Kind: EventOther})
	if s := c.EventSource(); s != EventSourceContainerd {
		t.Errorf("EventSource = %q, want %q", s, EventSourceContainerd)
	}
}

// A broken stream is subscribed again, with EventSubscribed first.
func TestWatchEventsCRIResubscribes(t *testing.T) {
	rt := &eventsRuntime{serve: func(n int, s runtimeapi.RuntimeService_GetContainerEventsServer) error {
		if err := s.Send(criStopped([]string{"c1", "c2"}[min(n, 1)])); err != nil {
			return err
		}
		if n == 0 {
			return status.Error(codes.Unavailable, "shutting down")
		}
		<-s.Context().Done()
		return nil
	}}
	_, got := watch(t, rt, nil)
	expectEvents(t, got, Event{Kind: EventSubscribed}, Event{Kind: EventExit, ID: "c1"},
		Event{Kind: EventSubscribed}, Event{Kind: EventExit, ID: "c2"})
}

// A CRI stream with no events yet counts as subscribed once it has stayed open a while.
func TestWatchEventsCRIIdleStreamSubscribes(t *testing.T) {
	settle := streamSettle
	t.Cleanup(func() { streamSettle = settle }) // after the watch's cleanup has stopped it
	streamSettle = 20 * time.Millisecond
	rt := &eventsRuntime{serve: func(_ int, s runtimeapi.RuntimeService_GetContainerEventsServer) error {
		<-s.Context().Done()
		return nil
	}}
	c, got := watch(t, rt, nil)
	expectEvents(t, got, Event{Kind: EventSubscribed})
	if s := c.EventSource(); s != EventSourceCRI {
		t.Errorf("EventSource = %q, want %q", s, EventSourceCRI)
	}
}

// watchUntilReturn runs WatchEvents against rt (containerd's event service not served)
// and waits for it to return on its own.
func watchUntilReturn(t *testing.T, rt *eventsRuntime) (*Client, []Event) {
	t.Helper()
	c := serveCRI(t, rt, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []Event
	c.WatchEvents(ctx, func(e Event) { got = append(got, e) })
	if ctx.Err() != nil {
		t.Fatalf("WatchEvents did not return; events %+v", got)
	}
	return c, got
}

// A runtime that closes every CRI stream at once (CRI-O with pod events off) and serves
// no containerd events is taken to have none after upstream's number of retries.
func TestWatchEventsClosedStreamsMeanNone(t *testing.T) {
	rt := &eventsRuntime{serve: func(int, runtimeapi.RuntimeService_GetContainerEventsServer) error { return nil }}
	c, got := watchUntilReturn(t, rt)
	if want := []Event{{Kind: EventUnavailable}}; !slices.Equal(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
	if n := rt.calls.Load(); n != criClosedRetries {
		t.Errorf("%d subscriptions, want %d", n, criClosedRetries)
	}
	if s := c.EventSource(); s != EventSourceNone {
		t.Errorf("EventSource = %q, want %q", s, EventSourceNone)
	}
}

// A runtime that serves neither stream: EventUnavailable at once.
func TestWatchEventsNeitherStream(t *testing.T) {
	c, got := watchUntilReturn(t, &eventsRuntime{})
	if want := []Event{{Kind: EventUnavailable}}; !slices.Equal(got, want) {
		t.Errorf("events %+v, want %+v", got, want)
	}
	if s := c.EventSource(); s != EventSourceNone {
		t.Errorf("EventSource = %q, want %q", s, EventSourceNone)
	}
}

// Streams that broke with errors, or were closed after they had settled, are runtime
// restarts: they are subscribed again however many there are.
func TestWatchEventsClosedAfterEventsResubscribes(t *testing.T) {
	rt := &eventsRuntime{serve: func(n int, s runtimeapi.RuntimeService_GetContainerEventsServer) error {
		if n < 2*criClosedRetries {
			if n%2 == 0 {
				return status.Error(codes.Unavailable, "restarting")
			}
			return s.Send(criStopped("c1")) // then closed cleanly
		}
		<-s.Context().Done()
		return nil
	}}
	c, got := watch(t, rt, nil)
	for range criClosedRetries {
		expectEvents(t, got, Event{Kind: EventSubscribed}, Event{Kind: EventExit, ID: "c1"})
	}
	expectEvents(t, got, Event{Kind: EventSubscribed})
	if s := c.EventSource(); s != EventSourceCRI {
		t.Errorf("EventSource = %q, want %q", s, EventSourceCRI)
	}
}
