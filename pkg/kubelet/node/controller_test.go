package node

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
)

type readyRuntime struct{}

func (readyRuntime) Ready(context.Context) []string          { return nil }
func (readyRuntime) Version(context.Context) (string, error) { return "containerd://1.6.20", nil }

// Node status and the Lease go through the heartbeat client (upstream's is not
// rate-limited), registration and the Node watch through the ordinary one; both see the
// same API objects.
func TestHeartbeatsUseTheHeartbeatClient(t *testing.T) {
	client := fake.NewClientset()
	heartbeat := fake.NewClientset()
	heartbeat.PrependReactor("*", "*", func(a clienttesting.Action) (bool, runtime.Object, error) {
		return clienttesting.ObjectReaction(client.Tracker())(a)
	})
	c, err := New(Config{Client: client, HeartbeatClient: heartbeat, Runtime: readyRuntime{},
		Recorder: record.NewFakeRecorder(100), NodeName: "n1", UpdateFrequency: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	has := func(cs *fake.Clientset, verb, resource, sub string) bool {
		for _, a := range cs.Actions() {
			if a.GetVerb() == verb && a.GetResource().Resource == resource && a.GetSubresource() == sub {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if has(heartbeat, "patch", "nodes", "status") && has(heartbeat, "create", "leases", "") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node status patch and Lease through the heartbeat client; its actions: %v", heartbeat.Actions())
		}
	}
	if !has(client, "create", "nodes", "") {
		t.Errorf("registration did not go through the ordinary client: %v", client.Actions())
	}
	for _, a := range client.Actions() {
		if r := a.GetResource().Resource; r == "leases" || a.GetSubresource() == "status" {
			t.Errorf("heartbeat traffic on the rate-limited client: %s %s/%s", a.GetVerb(), r, a.GetSubresource())
		}
	}
}

// With an informer on its node from its owner, the controller watches through it (no
// watch of its own) and registers the Node again at once when it is deleted.
func TestSharedNodeInformerRepairsADeletion(t *testing.T) {
	client := fake.NewClientset()
	factory := NodeInformerFactory(client, "n1")
	nodes := factory.Core().V1().Nodes()
	nodes.Informer()
	c, err := New(Config{Client: client, Runtime: readyRuntime{}, Recorder: record.NewFakeRecorder(100), NodeName: "n1",
		UpdateFrequency: time.Hour, Nodes: nodes})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	factory.Start(ctx.Done())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done; factory.Shutdown() }()

	creates := func() int {
		n := 0
		for _, a := range client.Actions() {
			if a.GetVerb() == "create" && a.GetResource().Resource == "nodes" {
				n++
			}
		}
		return n
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s; actions: %v", what, client.Actions())
			}
		}
	}
	waitFor("no registration", func() bool { return creates() == 1 })
	waitFor("the informer never saw the node", func() bool { _, err := nodes.Lister().Get("n1"); return err == nil })
	if err := client.CoreV1().Nodes().Delete(ctx, "n1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// UpdateFrequency is an hour: only the deletion seen through the shared informer can
	// bring the second registration.
	waitFor("the deleted node was not registered again", func() bool { return creates() == 2 })
	watches := 0
	for _, a := range client.Actions() {
		if a.GetVerb() == "watch" && a.GetResource().Resource == "nodes" {
			watches++
		}
	}
	if watches != 1 {
		t.Errorf("%d node watches, want the shared one only", watches)
	}
}
