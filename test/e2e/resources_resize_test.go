package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
)

// resizeSameList: both lists hold the same quantities (by value, not spelling).
func resizeSameList(a, b v1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for n, q := range a {
		if o, ok := b[n]; !ok || o.Cmp(q) != 0 {
			return false
		}
	}
	return true
}

// resizeDone: the container's allocated resources are want's requests, its status
// resources are want, and the pod shows no resize condition.
func resizeDone(p *v1.Pod, name string, want v1.ResourceRequirements) bool {
	cs := containerStatus(p, name)
	if cs == nil || cs.State.Running == nil || cs.Resources == nil || podResizeConditions(p) != "" {
		return false
	}
	return resizeSameList(cs.AllocatedResources, want.Requests) &&
		resizeSameList(cs.Resources.Requests, want.Requests) && resizeSameList(cs.Resources.Limits, want.Limits)
}

// podResizeConditions is the pod's PodResizePending and PodResizeInProgress conditions,
// one line each ("" when there is none).
func podResizeConditions(p *v1.Pod) string {
	var out []string
	for _, c := range p.Status.Conditions {
		if c.Type == v1.PodResizePending || c.Type == v1.PodResizeInProgress {
			out = append(out, fmt.Sprintf("%s status=%s reason=%q message=%q observedGeneration=%d", c.Type, c.Status, c.Reason, c.Message, c.ObservedGeneration))
		}
	}
	return strings.Join(out, "\n")
}

// resizeContainerLine describes a container's resize-related status for the log.
func resizeContainerLine(p *v1.Pod, name string) string {
	cs := containerStatus(p, name)
	if cs == nil {
		return name + ": no status"
	}
	var res string
	if cs.Resources != nil {
		res = fmt.Sprintf("requests %v limits %v", cs.Resources.Requests, cs.Resources.Limits)
	}
	return fmt.Sprintf("%s: allocatedResources %v resources {%s} restartCount %d containerID %s %s",
		name, cs.AllocatedResources, res, cs.RestartCount, cs.ContainerID, stateString(cs.State))
}

// recordResizeConditions watches p from now in the background and keeps every distinct
// PodResizePending and PodResizeInProgress condition it shows; the returned function
// stops the watch and returns them in the order first seen.
func recordResizeConditions(ctx context.Context, p *v1.Pod) func() []string {
	wctx, cancel := context.WithCancel(ctx)
	var (
		mu   sync.Mutex
		seen []string
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for wctx.Err() == nil {
			w, err := bed.Client.CoreV1().Pods(p.Namespace).Watch(wctx, metav1.ListOptions{
				FieldSelector: fields.OneTermEqualSelector("metadata.name", p.Name).String()})
			if err != nil {
				select {
				case <-wctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
				continue
			}
		events:
			for {
				select {
				case <-wctx.Done():
					break events
				case ev, ok := <-w.ResultChan():
					if !ok {
						break events
					}
					pod, isPod := ev.Object.(*v1.Pod)
					if !isPod {
						continue
					}
					for _, l := range strings.Split(podResizeConditions(pod), "\n") {
						mu.Lock()
						if l != "" && !slices.Contains(seen, l) {
							seen = append(seen, l)
						}
						mu.Unlock()
					}
				}
			}
			w.Stop()
		}
	}()
	return func() []string {
		cancel()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// resizeEvent waits for an event of p (on fieldPath, "" for the pod) of type typ and
// reason whose message starts with prefix and returns it.
func resizeEvent(ctx context.Context, t *testing.T, p *v1.Pod, fieldPath, typ, reason, prefix string) v1.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var found v1.Event
	watchUntilPoll(ctx, t, fmt.Sprintf("%s event %s %q on %s%s", typ, reason, prefix, p.Name, fieldPath), func() (bool, string) {
		evs, err := bed.Client.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{
			FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(p.UID)).String()})
		if err != nil {
			return false, err.Error()
		}
		var lines []string
		for _, e := range evs.Items {
			if e.InvolvedObject.FieldPath == fieldPath && e.Type == typ && e.Reason == reason && strings.HasPrefix(e.Message, prefix) {
				found = e
				return true, ""
			}
			lines = append(lines, fmt.Sprintf("%s %s %s %q", e.InvolvedObject.FieldPath, e.Type, e.Reason, e.Message))
		}
		return false, strings.Join(lines, "; ")
	})
	t.Logf("event on %s%s: type=%s reason=%s count=%d message=%q", p.Name, fieldPath, found.Type, found.Reason, found.Count, found.Message)
	return found
}

// resizeWait bounds one wait for the node's answer to a resize to d, so an agent without
// resize fails early.
func resizeWait(ctx context.Context, t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(ctx, d)
	t.Cleanup(cancel)
	return ctx
}

// patchResize patches p's containers through the resize subresource.
func patchResize(ctx context.Context, p *v1.Pod, patch string) (*v1.Pod, error) {
	return bed.Client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "resize")
}

// TestResourcesResize: in-place pod resize through the pods' resize subresource, as the
// upstream kubelet v1.37 does it (cgroupfs, cgroup v1, a cgroup root of the test's own).
// A Burstable pod's container is resized without a restart: allocated and status
// resources, no resize condition left, the container's and the pod's cgroups, and the
// ResizeStarted / ResizeCompleted events. A container whose memory resize policy is
// RestartContainer restarts once while its sibling keeps running. A resize the node
// cannot fit now is Deferred (PodResizePending, a ResizeDeferred event) and completes once
// a pod holding the CPU is deleted. A resize beyond the node's allocatable is refused by
// the API server (PodResizeValidator). A memory limit below the container's usage is
// refused (PodResizeInProgress/Error, ResizeError). The same checks are meant for both agents.
func TestResourcesResize(t *testing.T) {
	ctx := ctxFor(t, 3*time.Minute)
	const root = "/mkl-e2e-resize"
	k := startCgroupNode(t, "rz", root)
	stopWhenDone(t, k)
	node := watchNode(ctx, t, k.NodeName, isReady)
	burstable := root + "/kubepods/burstable"

	// 1. One container, resize policy NotRequired (the default): resized in place.
	a := newPod(k.NodeName, "sleep", "3600")
	a.Spec.Containers[0].Name = "c"
	a.Spec.Containers[0].Resources = cpuMemResources("100m", "32Mi", "200m", "64Mi")
	a = watchPod(ctx, t, createPod(ctx, t, a), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	if a.Status.QOSClass != v1.PodQOSBurstable {
		t.Fatalf("QoS class %s", a.Status.QOSClass)
	}
	idA := containerStatus(a, "c").ContainerID
	stopA := recordResizeConditions(ctx, a)
	t.Cleanup(func() { stopA() })
	patched, err := patchResize(ctx, a, `{"spec":{"containers":[{"name":"c","resources":{"requests":{"cpu":"150m","memory":"48Mi"},"limits":{"cpu":"300m","memory":"96Mi"}}}]}}`)
	if err != nil {
		t.Fatalf("resize: %v", err)
	}
	t.Logf("pod A: generation %d after the resize patch", patched.Generation)
	wantA := cpuMemResources("150m", "48Mi", "300m", "96Mi")
	start := time.Now()
	a = watchPod(resizeWait(ctx, t, 45*time.Second), t, a, "resized", func(p *v1.Pod) bool { return resizeDone(p, "c", wantA) })
	t.Logf("pod A resized in %s; status.observedGeneration %d; %s", time.Since(start).Round(time.Millisecond), a.Status.ObservedGeneration, resizeContainerLine(a, "c"))
	if cs := containerStatus(a, "c"); cs.RestartCount != 0 || cs.ContainerID != idA {
		t.Errorf("container c restarted: restartCount %d, ID %s (was %s)", cs.RestartCount, cs.ContainerID, idA)
	}
	podA := burstable + "/pod" + string(a.UID)
	checkCgroupFiles(t, []cgroupFileCheck{
		{"cpu", podA + "/" + containerID(a, "c"), "cpu.cfs_quota_us", "30000"},
		{"cpu", podA + "/" + containerID(a, "c"), "cpu.shares", "153"},
		{"memory", podA + "/" + containerID(a, "c"), "memory.limit_in_bytes", "100663296"},
		{"cpu", podA, "cpu.cfs_quota_us", "30000"},
		{"cpu", podA, "cpu.shares", "153"},
		{"memory", podA, "memory.limit_in_bytes", "100663296"},
	})
	started := resizeEvent(ctx, t, a, "", v1.EventTypeNormal, "ResizeStarted", "Pod resize started: ")
	completed := resizeEvent(ctx, t, a, "", v1.EventTypeNormal, "ResizeCompleted", "Pod resize completed: ")
	// The message is the resized spec's resources as JSON, and the pod's generation.
	summaryA := `{"containers":[{"name":"c","resources":{"limits":{"cpu":"300m","memory":"96Mi"},"requests":{"cpu":"150m","memory":"48Mi"}}}],"generation":2}`
	if started.Message != "Pod resize started: "+summaryA || completed.Message != "Pod resize completed: "+summaryA {
		t.Errorf("ResizeStarted %q, ResizeCompleted %q; want the summary %s", started.Message, completed.Message, summaryA)
	}
	t.Logf("pod A resize conditions seen:\n%s", strings.Join(stopA(), "\n"))

	// 2. Two containers; "restart" restarts for a memory resize, "keep" does not.
	b := newPod(k.NodeName, "sleep", "3600")
	b.Spec.Containers[0].Name = "keep"
	b.Spec.Containers[0].Resources = cpuMemResources("100m", "32Mi", "200m", "64Mi")
	r := b.Spec.Containers[0]
	r.Name = "restart"
	r.ResizePolicy = []v1.ContainerResizePolicy{
		{ResourceName: v1.ResourceCPU, RestartPolicy: v1.NotRequired},
		{ResourceName: v1.ResourceMemory, RestartPolicy: v1.RestartContainer},
	}
	b.Spec.Containers = append(b.Spec.Containers, r)
	b = watchPod(ctx, t, createPod(ctx, t, b), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning && podReady(p) })
	idKeep, idRestart := containerStatus(b, "keep").ContainerID, containerStatus(b, "restart").ContainerID
	stopB := recordResizeConditions(ctx, b)
	t.Cleanup(func() { stopB() })
	if _, err := patchResize(ctx, b, `{"spec":{"containers":[`+
		`{"name":"keep","resources":{"requests":{"cpu":"150m","memory":"48Mi"},"limits":{"cpu":"300m","memory":"96Mi"}}},`+
		`{"name":"restart","resources":{"requests":{"memory":"48Mi"},"limits":{"memory":"96Mi"}}}]}}`); err != nil {
		t.Fatalf("resize: %v", err)
	}
	wantKeep, wantRestart := cpuMemResources("150m", "48Mi", "300m", "96Mi"), cpuMemResources("100m", "48Mi", "200m", "96Mi")
	start = time.Now()
	b = watchPod(resizeWait(ctx, t, 45*time.Second), t, b, "both containers resized, restart restarted", func(p *v1.Pod) bool {
		cs := containerStatus(p, "restart")
		return resizeDone(p, "keep", wantKeep) && resizeDone(p, "restart", wantRestart) && cs.RestartCount >= 1 && cs.ContainerID != idRestart
	})
	t.Logf("pod B resized in %s:\n%s\n%s", time.Since(start).Round(time.Millisecond), resizeContainerLine(b, "keep"), resizeContainerLine(b, "restart"))
	if cs := containerStatus(b, "keep"); cs.RestartCount != 0 || cs.ContainerID != idKeep {
		t.Errorf("container keep restarted: restartCount %d, ID %s (was %s)", cs.RestartCount, cs.ContainerID, idKeep)
	}
	if cs := containerStatus(b, "restart"); cs.RestartCount != 1 {
		t.Errorf("container restart: restartCount %d, want 1", cs.RestartCount)
	}
	podB := burstable + "/pod" + string(b.UID)
	checkCgroupFiles(t, []cgroupFileCheck{
		{"memory", podB + "/" + containerID(b, "keep"), "memory.limit_in_bytes", "100663296"},
		{"cpu", podB + "/" + containerID(b, "keep"), "cpu.cfs_quota_us", "30000"},
		{"memory", podB + "/" + containerID(b, "restart"), "memory.limit_in_bytes", "100663296"},
		{"cpu", podB + "/" + containerID(b, "restart"), "cpu.cfs_quota_us", "20000"},
		{"cpu", podB, "cpu.cfs_quota_us", "50000"},
		{"cpu", podB, "cpu.shares", "256"},
		{"memory", podB, "memory.limit_in_bytes", "201326592"},
	})
	resizeEvent(ctx, t, b, "spec.containers{restart}", v1.EventTypeNormal, "Killing", "Container restart resize requires restart")
	summaryB := `{"containers":[{"name":"keep","resources":{"limits":{"cpu":"300m","memory":"96Mi"},"requests":{"cpu":"150m","memory":"48Mi"}}},` +
		`{"name":"restart","resources":{"limits":{"cpu":"200m","memory":"96Mi"},"requests":{"cpu":"100m","memory":"48Mi"}}}],"generation":2}`
	resizeEvent(ctx, t, b, "", v1.EventTypeNormal, "ResizeStarted", "Pod resize started: "+summaryB)
	resizeEvent(ctx, t, b, "", v1.EventTypeNormal, "ResizeCompleted", "Pod resize completed: "+summaryB)
	t.Logf("pod B resize conditions seen:\n%s", strings.Join(stopB(), "\n"))

	// 3. Deferred: C's larger CPU request does not fit beside blocker D until D goes.
	allocatable := node.Status.Allocatable.Cpu().MilliValue()
	onNode, err := bed.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", k.NodeName).String()})
	if err != nil {
		t.Fatal(err)
	}
	var used int64
	for _, p := range onNode.Items {
		if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		for _, c := range p.Spec.Containers {
			used += c.Resources.Requests.Cpu().MilliValue()
		}
	}
	const margin, reqC = 50, 100
	blocker := allocatable - used - reqC - margin
	t.Logf("node %s: allocatable cpu %dm, requested by its %d pods %dm; C requests %dm, blocker D %dm", k.NodeName, allocatable, len(onNode.Items), used, reqC, blocker)
	if blocker <= 0 {
		t.Fatalf("no room for a blocker pod: allocatable %dm, used %dm", allocatable, used)
	}
	c := newPod(k.NodeName, "sleep", "3600")
	c.Spec.Containers[0].Name = "c"
	c.Spec.Containers[0].Resources = cpuMemResources(fmt.Sprintf("%dm", reqC), "", "", "")
	c = watchPod(ctx, t, createPod(ctx, t, c), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	d := newPod(k.NodeName, "sleep", "3600")
	d.Spec.Containers[0].Resources = cpuMemResources(fmt.Sprintf("%dm", blocker), "", "", "")
	d = watchPod(ctx, t, createPod(ctx, t, d), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	stopC := recordResizeConditions(ctx, c)
	t.Cleanup(func() { stopC() })
	newC := reqC + margin + 200
	if _, err := patchResize(ctx, c, fmt.Sprintf(`{"spec":{"containers":[{"name":"c","resources":{"requests":{"cpu":"%dm"}}}]}}`, newC)); err != nil {
		t.Fatalf("resize: %v", err)
	}
	c = watchPod(resizeWait(ctx, t, 45*time.Second), t, c, "resize Deferred", func(p *v1.Pod) bool {
		cond := podCondition(p, v1.PodResizePending)
		return cond != nil && cond.Reason == v1.PodReasonDeferred
	})
	cond := podCondition(c, v1.PodResizePending)
	t.Logf("pod C: PodResizePending status=%s reason=%q message=%q observedGeneration=%d", cond.Status, cond.Reason, cond.Message, cond.ObservedGeneration)
	wantMsg := fmt.Sprintf("Node didn't have enough resource: cpu, requested: %d, used: %d, capacity: %d", newC, allocatable-reqC-margin, allocatable)
	if cond.Status != v1.ConditionTrue || cond.Message != wantMsg {
		t.Errorf("PodResizePending: status %s message %q, want True %q", cond.Status, cond.Message, wantMsg)
	}
	if got := containerStatus(c, "c").AllocatedResources.Cpu().MilliValue(); got != reqC {
		t.Errorf("allocated cpu %dm while deferred, want %dm", got, reqC)
	}
	// Upstream names the admission failure's reason (OutOfcpu) in the event's message, not
	// the condition's (Deferred); the condition's message is the event's "error".
	deferred := resizeEvent(ctx, t, c, "", v1.EventTypeWarning, "ResizeDeferred", "Pod resize OutOfcpu: ")
	if want := fmt.Sprintf(`Pod resize OutOfcpu: {"containers":[{"name":"c","resources":{"requests":{"cpu":"%dm"}}}],"generation":2,"error":%q}`, newC, wantMsg); deferred.Message != want {
		t.Errorf("ResizeDeferred message %q, want %q", deferred.Message, want)
	}
	start = time.Now()
	if err := bed.Client.CoreV1().Pods(d.Namespace).Delete(ctx, d.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wantC := cpuMemResources(fmt.Sprintf("%dm", newC), "", "", "")
	c = watchPod(resizeWait(ctx, t, 60*time.Second), t, c, "deferred resize done after the blocker's deletion", func(p *v1.Pod) bool { return resizeDone(p, "c", wantC) })
	t.Logf("pod C: deferred resize completed %s after deleting D; %s", time.Since(start).Round(time.Millisecond), resizeContainerLine(c, "c"))
	summaryC := fmt.Sprintf(`{"containers":[{"name":"c","resources":{"requests":{"cpu":"%dm"}}}],"generation":2}`, newC)
	resizeEvent(ctx, t, c, "", v1.EventTypeNormal, "ResizeStarted", "Pod resize started: "+summaryC)
	resizeEvent(ctx, t, c, "", v1.EventTypeNormal, "ResizeCompleted", "Pod resize completed: "+summaryC)
	t.Logf("pod C resize conditions seen:\n%s", strings.Join(stopC(), "\n"))

	// 4. Beyond the node's allocatable: the API server refuses the resize.
	_, err = patchResize(ctx, c, fmt.Sprintf(`{"spec":{"containers":[{"name":"c","resources":{"requests":{"cpu":"%dm"}}}]}}`, 2*allocatable))
	t.Logf("resize beyond allocatable: %v", err)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "node didn't have enough allocatable resources") {
		t.Errorf("resize to %dm cpu: %v, want Forbidden: node didn't have enough allocatable resources", 2*allocatable, err)
	}

	// 5. A memory limit below what the container uses: refused before anything changes,
	// reported as PodResizeInProgress/Error and a ResizeError event; the container keeps
	// running with its limit.
	e := newPod(k.NodeName, "sh", "-c", "head -c 41943040 /dev/zero > /dev/shm/fill && touch /tmp/filled && exec sleep 3600")
	e.Spec.Containers[0].Name = "c"
	e.Spec.Containers[0].Resources = cpuMemResources("", "32Mi", "", "96Mi")
	e.Spec.Containers[0].ReadinessProbe = &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", "/tmp/filled"}}}, PeriodSeconds: 1}
	e = watchPod(ctx, t, createPod(ctx, t, e), "Ready (40 MB in its /dev/shm)", func(p *v1.Pod) bool {
		cs := containerStatus(p, "c")
		return cs != nil && cs.Ready
	})
	idE := containerStatus(e, "c").ContainerID
	if _, err := patchResize(ctx, e, `{"spec":{"containers":[{"name":"c","resources":{"requests":{"memory":"16Mi"},"limits":{"memory":"24Mi"}}}]}}`); err != nil {
		t.Fatalf("resize: %v", err)
	}
	const errPrefix = "cannot decrease memory limits: "
	wantErr := `attempting to set container "c" memory limit (25165824) below current usage (`
	e = watchPod(resizeWait(ctx, t, 45*time.Second), t, e, "PodResizeInProgress Error", func(p *v1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == v1.PodResizeInProgress && c.Reason == v1.PodReasonError {
				return true
			}
		}
		return false
	})
	t.Logf("pod E: %s", podResizeConditions(e))
	for _, c := range e.Status.Conditions {
		if c.Type == v1.PodResizeInProgress && (!strings.HasPrefix(c.Message, errPrefix) || !strings.Contains(c.Message, wantErr)) {
			t.Errorf("PodResizeInProgress message %q, want %q...%q", c.Message, errPrefix, wantErr)
		}
	}
	ev := resizeEvent(ctx, t, e, "", v1.EventTypeWarning, "ResizeError", "Pod resize error: ")
	if !strings.Contains(ev.Message, `"error":"`+errPrefix) {
		t.Errorf("ResizeError message %q", ev.Message)
	}
	if cs := containerStatus(e, "c"); cs.RestartCount != 0 || cs.ContainerID != idE {
		t.Errorf("container restarted: %d %s", cs.RestartCount, cs.ContainerID)
	}
	if got := cgroupFile(t, "memory", burstable+"/pod"+string(e.UID)+"/"+containerID(e, "c"), "memory.limit_in_bytes"); got != "100663296" {
		t.Errorf("container memory limit %s after a refused resize, want 100663296", got)
	}
}
