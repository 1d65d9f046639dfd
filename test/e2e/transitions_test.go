package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// The transition suite runs each case's pod on one node and takes the pod's whole status
// (normalised, see normalize.go) at each of the case's steps, plus the pod's events. The
// expected values are upstream's: `MINIKUBELET_E2E_RECORD=1 make test-upstream` records
// them from the pinned upstream kubelet into testdata/transitions; `make test-upstream`
// checks that upstream still produces them and `make test` that minikubelet does.

// transitionNode is the node name of both agents' runs, so that messages naming the node
// compare equal.
const transitionNode = "transitions"

var recordTransitions = os.Getenv("MINIKUBELET_E2E_RECORD") == "1"

// step is one point of a case: the first status for which until holds is taken; then (if
// set) acts on the pod, e.g. updates its spec or deletes it.
type step struct {
	name  string
	until func(p *v1.Pod) bool
	then  func(ctx context.Context, t *testing.T, p *v1.Pod)
	// gone: the step is the pod's removal from the API (its last version is taken).
	gone bool
}

type transitionCase struct {
	name  string
	pod   func(node string) *v1.Pod
	steps []step
}

// knownDifference is a status path (dotted) left out of a case's comparison, and why.
type knownDifference struct{ path, why string }

// dropKnown removes the known differences' fields from a normalised status.
func dropKnown(st map[string]any, known []knownDifference) {
	for _, k := range known {
		keys := strings.Split(k.path, ".")
		m := st
		for _, key := range keys[:len(keys)-1] {
			next, ok := m[key].(map[string]any)
			if !ok {
				m = nil
				break
			}
			m = next
		}
		if m != nil {
			delete(m, keys[len(keys)-1])
		}
	}
}

// golden is what one case records: the normalised status at each step and the set of the
// pod's events ("Type Reason component: message").
type golden struct {
	Steps  []goldenStep `json:"steps"`
	Events []string     `json:"events"`
}

type goldenStep struct {
	Name   string         `json:"name"`
	Status map[string]any `json:"status"`
}

// goldenPath is upstream's record of a case on the bed's runtime: runtimes word their
// errors differently (pull and start failures), so containerd 2.x has records of its own.
func goldenPath(name string) string {
	if bed.Runtime() != testbed.RuntimeContainerd {
		return filepath.Join("testdata", "transitions", bed.Runtime(), name+".yaml")
	}
	return filepath.Join("testdata", "transitions", name+".yaml")
}

// startTransitionNode starts the suite's node on a containerd of its own (runtime name),
// with only the bed's images: other tests pull the same images under other names, and a
// runtime then reports a container's image by whichever name it lists first.
func startTransitionNode(t *testing.T, runtime string) *testbed.Kubelet {
	rt, err := bed.StartNodeRuntime(runtime)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Stop() })
	return startKubelet(t, transitionNode, runtimeEndpointFlag+rt.Endpoint())
}

func TestStatusTransitions(t *testing.T) {
	ctx := ctxFor(t, 15*time.Minute)
	k := startTransitionNode(t, "transitions")
	watchNode(ctx, t, k.NodeName, isReady)
	pushRegistryBusybox(t)
	cases := transitionCases()
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("case %s twice", tc.name)
		}
		seen[tc.name] = true
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runTransitionCase(t, k, tc)
		})
	}
}

// pushRegistryBusybox serves busybox from the bed's registry as e2e/busybox:v1, made a
// distinct image (a label) so that its pulls never touch the local busybox's image record:
// containerd 1.6 briefly loses an image's other names while it adds one by a pull.
func pushRegistryBusybox(t *testing.T) {
	img := bed.Images[testbed.BusyboxImage]
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Labels = map[string]string{"minikubelet.test/served-by": "registry"}
	if img, err = mutate.Config(img, cfg); err == nil {
		_, err = bed.Registry.Push("e2e/busybox", "v1", img)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func runTransitionCase(t *testing.T, k *testbed.Kubelet, tc transitionCase) {
	ctx := ctxFor(t, 3*time.Minute)
	pod := tc.pod(k.NodeName)
	pod.Name = "tr-" + tc.name
	p := createPod(ctx, t, pod)
	norm := newNormalizer(k)
	var got golden
	var trail []string // every distinct normalised status, for failure messages
	watchPodEvents(ctx, t, p, func(p *v1.Pod, deleted bool) bool {
		st := norm.status(p)
		if s := mustYAML(t, st); len(trail) == 0 || trail[len(trail)-1] != s {
			trail = append(trail, s)
		}
		for len(got.Steps) < len(tc.steps) {
			s := tc.steps[len(got.Steps)]
			if s.gone != deleted || (s.until != nil && !s.until(p)) {
				return false
			}
			got.Steps = append(got.Steps, goldenStep{Name: s.name, Status: st})
			if s.then != nil {
				s.then(ctx, t, p)
				return false // the action's effect comes in a later version
			}
		}
		return true
	}, func() string { return strings.Join(trail, "---\n") })

	path := goldenPath(tc.name)
	if recordTransitions {
		if !upstream {
			t.Fatal("MINIKUBELET_E2E_RECORD=1 records upstream's behaviour: run it with make test-upstream")
		}
		got.Events = stableEvents(ctx, t, p, norm)
		writeGolden(t, path, got)
		return
	}
	want := readGolden(t, path)
	for i := range want.Steps {
		if i >= len(got.Steps) {
			break
		}
		dropKnown(want.Steps[i].Status, knownDifferences[tc.name])
		dropKnown(got.Steps[i].Status, knownDifferences[tc.name])
		if d := cmp.Diff(want.Steps[i], got.Steps[i]); d != "" {
			t.Errorf("step %q differs from upstream (-upstream +got):\n%s", want.Steps[i].Name, d)
		}
	}
	if len(want.Steps) != len(got.Steps) {
		t.Errorf("%d steps, upstream's record has %d", len(got.Steps), len(want.Steps))
	}
	if t.Failed() {
		t.Logf("every status seen:\n%s", strings.Join(trail, "---\n"))
	}
	events := waitEvents(ctx, p, norm, want.Events)
	if d := cmp.Diff(want.Events, events); d != "" {
		t.Errorf("events differ from upstream (-upstream +got):\n%s", d)
	}
}

// watchPodEvents calls cond on every version of p (deleted: the last one, at its removal)
// until it returns true, failing with trail() when the context ends first.
func watchPodEvents(ctx context.Context, t *testing.T, p *v1.Pod, cond func(p *v1.Pod, deleted bool) bool, trail func() string) {
	t.Helper()
	sel := fields.OneTermEqualSelector("metadata.name", p.Name).String()
	rv := p.ResourceVersion
	if cond(p, false) {
		return
	}
	for {
		w, err := bed.Client.CoreV1().Pods(p.Namespace).Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv})
		if err != nil {
			t.Fatalf("watch: %v; statuses seen:\n%s", err, trail())
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				break
			}
			o, ok := ev.Object.(*v1.Pod)
			if !ok {
				continue
			}
			rv = o.ResourceVersion
			if cond(o, ev.Type == watch.Deleted) {
				w.Stop()
				return
			}
		}
		w.Stop()
		if ctx.Err() != nil {
			t.Fatalf("steps not reached before the timeout; statuses seen:\n%s", trail())
		}
	}
}

// podEvents returns the pod's events, normalised, sorted and without repeats.
func podEvents(ctx context.Context, p *v1.Pod, norm *normalizer) ([]string, error) {
	sel := fields.OneTermEqualSelector("involvedObject.uid", string(p.UID)).String()
	list, err := bed.Client.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, e := range list.Items {
		s := fmt.Sprintf("%s %s %s: %s", e.Type, e.Reason, e.Source.Component, norm.text(e.Message))
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out, nil
}

// waitEvents waits (bounded) until the pod's events are want, as events are sent
// asynchronously, and returns the last list.
func waitEvents(ctx context.Context, p *v1.Pod, norm *normalizer, want []string) []string {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var got []string
	for {
		if l, err := podEvents(ctx, p, norm); err == nil {
			got = l
			if slices.Equal(got, want) {
				return got
			}
		}
		select {
		case <-ctx.Done():
			return got
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// stableEvents (recording only) returns the pod's events once the list has not changed for
// 3 s, as the recorder has nothing to compare with.
func stableEvents(ctx context.Context, t *testing.T, p *v1.Pod, norm *normalizer) []string {
	var last []string
	since := time.Now()
	for time.Since(since) < 3*time.Second {
		l, err := podEvents(ctx, p, norm)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(l, last) {
			last, since = l, time.Now()
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	return last
}

func mustYAML(t *testing.T, v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeGolden(t *testing.T, path string, g golden) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	hdr := fmt.Sprintf("# Recorded from the upstream kubelet v1.37.2 on %s by MINIKUBELET_E2E_RECORD=1 make test-upstream.\n", bed.Runtime())
	if err := os.WriteFile(path, []byte(hdr+mustYAML(t, g)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readGolden(t *testing.T, path string) golden {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("upstream's record: %v (record it with MINIKUBELET_E2E_RECORD=1 make test-upstream)", err)
	}
	var g golden
	// Through JSON, so that numbers decode as the normaliser's do (float64).
	j, err := yaml.YAMLToJSON(b)
	if err == nil {
		err = json.Unmarshal(j, &g)
	}
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if g.Events == nil {
		g.Events = []string{}
	}
	return g
}

// updateSpec changes the pod's spec through the API (retrying on conflicts with the
// node's status writes).
func updateSpec(ctx context.Context, t *testing.T, p *v1.Pod, change func(*v1.Pod)) {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := bed.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(cur)
		_, err = bed.Client.CoreV1().Pods(p.Namespace).Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Errorf("update %s: %v", p.Name, err)
	}
}

// TestStatusTransitionsNetworkNotReady: the NetworkPluginNotReady case, on a node whose
// runtime reports its pod network not ready (the bed's CNI config moved away) from before
// the pod is created until the case's first step.
func TestStatusTransitionsNetworkNotReady(t *testing.T) {
	ctx := ctxFor(t, 5*time.Minute)
	k := startTransitionNode(t, "transitions-net")
	watchNode(ctx, t, k.NodeName, isReady)
	t.Cleanup(func() {
		if err := bed.RestorePodNetwork(); err != nil {
			t.Errorf("restore the pod network: %v", err)
		}
	})
	if err := bed.BreakPodNetwork(); err != nil {
		t.Fatal(err)
	}
	watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool {
		c := readyCondition(n)
		return c != nil && c.Status == v1.ConditionFalse && strings.Contains(c.Message, "NetworkReady=false")
	})
	runTransitionCase(t, k, networkNotReadyCase())
}
