package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ggcrv1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/test/testbed"
)

// memoryAvailable is the node's memory.available as the kubelets measure it on cgroup
// v1: MemTotal less the root cgroup's working set (usage less inactive file pages).
func memoryAvailable(t *testing.T) int64 {
	t.Helper()
	read := func(path, key string) int64 {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(strings.TrimSuffix(sc.Text(), ":"))
			if key == "" && len(fields) == 1 || len(fields) >= 2 && strings.TrimSuffix(fields[0], ":") == key {
				n, err := strconv.ParseInt(fields[len(fields)-1], 10, 64)
				if err != nil && len(fields) == 3 { // meminfo: "MemTotal: N kB"
					n, err = strconv.ParseInt(fields[1], 10, 64)
					n *= 1024
				}
				if err != nil {
					t.Fatalf("%s: %q: %v", path, sc.Text(), err)
				}
				return n
			}
		}
		t.Fatalf("%s: no %q", path, key)
		return 0
	}
	total := read("/proc/meminfo", "MemTotal")
	usage := read("/sys/fs/cgroup/memory/memory.usage_in_bytes", "")
	inactive := read("/sys/fs/cgroup/memory/memory.stat", "total_inactive_file")
	return total - (usage - inactive)
}

func nodeCondition(n *v1.Node, typ v1.NodeConditionType) v1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return v1.ConditionUnknown
}

func hasTaint(n *v1.Node, key string) bool {
	return slices.ContainsFunc(n.Spec.Taints, func(t v1.Taint) bool { return t.Key == key && t.Effect == v1.TaintEffectNoSchedule })
}

func evicted(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed && p.Status.Reason == "Evicted" }

// checkEvicted: the pod failed with reason Evicted and a message matching want, carries
// the DisruptionTarget condition (pressure evictions only) and has the Evicted event.
func checkEvicted(ctx context.Context, t *testing.T, p *v1.Pod, want *regexp.Regexp, pressure bool) {
	t.Helper()
	if !want.MatchString(p.Status.Message) {
		t.Errorf("%s: message %q, want %s", p.Name, p.Status.Message, want)
	}
	dt := podCondition(p, v1.DisruptionTarget)
	switch {
	case pressure && (dt == nil || dt.Status != v1.ConditionTrue || dt.Reason != v1.PodReasonTerminationByKubelet || dt.Message != p.Status.Message):
		t.Errorf("%s: DisruptionTarget %+v, want True, TerminationByKubelet, the status message", p.Name, dt)
	case !pressure && dt != nil:
		t.Errorf("%s: DisruptionTarget %+v for a local storage limit", p.Name, dt)
	}
	waitEvent(ctx, t, p, "Evicted", p.Status.Message)
}

// TestEvictionMemory: with memory.available's hard threshold 1Gi under what the node has
// free, a BestEffort pod that takes 2Gi is evicted with upstream's status, condition,
// event and node condition and taint; a BestEffort pod is refused while the node is
// under memory pressure; the Guaranteed pod and the idle BestEffort pod stay; the
// condition and taint clear after the transition period.
func TestEvictionMemory(t *testing.T) {
	t.Parallel() // with TestEvictionDiskImages, on its own runtime; the margins allow for it
	ctx := ctxFor(t, 4*time.Minute)
	threshold := (memoryAvailable(t) - 1<<30) >> 20
	k := startKubelet(t, "evict-mem", fmt.Sprintf("--eviction-hard=memory.available<%dMi", threshold),
		"--eviction-pressure-transition-period=30s")
	n := watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool {
		return isReady(n) && nodeCondition(n, v1.NodeMemoryPressure) == v1.ConditionFalse
	})
	t.Logf("memory.available threshold %dMi; node allocatable memory %s", threshold, n.Status.Allocatable.Memory())

	guaranteed := newPod(k.NodeName, "sleep", "3600")
	guaranteed.Spec.Containers[0].Resources = v1.ResourceRequirements{
		Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("50m"), v1.ResourceMemory: resource.MustParse("32Mi")},
		Limits:   v1.ResourceList{v1.ResourceCPU: resource.MustParse("50m"), v1.ResourceMemory: resource.MustParse("32Mi")}}
	idle := newPod(k.NodeName, "sleep", "3600")
	for _, p := range []*v1.Pod{guaranteed, idle} {
		watchPod(ctx, t, createPod(ctx, t, p), "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	}
	hog := createPod(ctx, t, testAppPod(k.NodeName, "hog", "2048"))
	hog = watchPod(ctx, t, hog, "evicted", evicted)
	checkEvicted(ctx, t, hog, regexp.MustCompile(fmt.Sprintf(`^The node was low on resource: memory\. Threshold quantity: %dMi, available: \d+Ki\. Container main was using \d+Ki, request is 0, has larger consumption of memory\. $`, threshold)), true)
	if cs := containerStatus(hog, "main"); cs == nil || cs.State.Terminated == nil {
		t.Errorf("evicted pod's container not terminated: %+v", cs)
	}

	n = watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool {
		return nodeCondition(n, v1.NodeMemoryPressure) == v1.ConditionTrue && hasTaint(n, v1.TaintNodeMemoryPressure)
	})
	waitNodeEventReason(ctx, t, k.NodeName, "EvictionThresholdMet", "Attempting to reclaim memory")
	refused := createPod(ctx, t, newPod(k.NodeName, "sleep", "3600"))
	refused = watchPod(ctx, t, refused, "refused", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodFailed })
	if refused.Status.Reason != "Evicted" || refused.Status.Message != "Pod was rejected: The node had condition: [MemoryPressure]. " {
		t.Errorf("BestEffort pod under memory pressure: reason %q message %q", refused.Status.Reason, refused.Status.Message)
	}

	watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool {
		return nodeCondition(n, v1.NodeMemoryPressure) == v1.ConditionFalse && !hasTaint(n, v1.TaintNodeMemoryPressure)
	})
	for _, p := range []*v1.Pod{guaranteed, idle} {
		got, err := bed.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase != v1.PodRunning {
			t.Errorf("%s: %s, want it left running", p.Name, describe(got))
		}
	}
}

// nodeRootDir is the root directory the bed gives node name's agent.
func nodeRootDir(name string) string {
	if upstream {
		return filepath.Join(bed.Dir, "upstream-kubelet-"+name)
	}
	return filepath.Join(bed.Dir, "kubelet-"+name)
}

// mountTmpfs mounts a tmpfs of size at dir (made if missing) until the test ends.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// TestEvictionDisk: a node whose root directory is a 96Mi filesystem (its images are
// elsewhere: a dedicated image filesystem) with nodefs.available<40Mi. A pod over its
// emptyDir sizeLimit and a pod over its ephemeral-storage limit are evicted whatever the
// node's state, with upstream's messages and no DisruptionTarget; a pod filling the
// filesystem is evicted for DiskPressure (the pod using nothing stays), its emptyDir is
// released and the condition and taint clear after the transition period.
func TestEvictionDisk(t *testing.T) {
	ctx := ctxFor(t, 4*time.Minute)
	name := "evict-disk"
	mountTmpfs(t, nodeRootDir(name), "96m")
	k := startKubelet(t, name, "--eviction-hard=nodefs.available<40Mi", "--eviction-pressure-transition-period=20s",
		"--volume-stats-agg-period=2s")
	watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool { return isReady(n) && nodeCondition(n, v1.NodeDiskPressure) == v1.ConditionFalse })

	writer := func(mib int) *v1.Pod {
		p := newPod(k.NodeName, "sh", "-c", fmt.Sprintf("dd if=/dev/zero of=/data/f bs=1M count=%d; sleep 3600", mib))
		p.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
		return p
	}
	quiet := createPod(ctx, t, newPod(k.NodeName, "sleep", "3600"))
	watchPod(ctx, t, quiet, "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })

	sized := writer(8)
	sized.Spec.Volumes[0].EmptyDir.SizeLimit = ptr(resource.MustParse("4Mi"))
	limited := writer(8)
	limited.Spec.Containers[0].Resources.Limits = v1.ResourceList{v1.ResourceEphemeralStorage: resource.MustParse("4Mi")}
	sized, limited = createPod(ctx, t, sized), createPod(ctx, t, limited)
	checkEvicted(ctx, t, watchPod(ctx, t, sized, "evicted", evicted), regexp.MustCompile(`^Usage of EmptyDir volume "data" exceeds the limit "4Mi"\. $`), false)
	checkEvicted(ctx, t, watchPod(ctx, t, limited, "evicted", evicted), regexp.MustCompile(`^Pod ephemeral local storage usage exceeds the total limit of containers 4Mi\. $`), false)

	filler := createPod(ctx, t, writer(60))
	filler = watchPod(ctx, t, filler, "evicted", evicted)
	checkEvicted(ctx, t, filler, regexp.MustCompile(`^The node was low on resource: ephemeral-storage\. Threshold quantity: 40Mi, available: \d+Ki\. `), true)
	watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool {
		return nodeCondition(n, v1.NodeDiskPressure) == v1.ConditionTrue && hasTaint(n, v1.TaintNodeDiskPressure)
	})
	waitNodeEventReason(ctx, t, k.NodeName, "EvictionThresholdMet", "Attempting to reclaim ephemeral-storage")
	// The evicted pods' emptyDirs are released: the node recovers.
	watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool {
		return nodeCondition(n, v1.NodeDiskPressure) == v1.ConditionFalse && !hasTaint(n, v1.TaintNodeDiskPressure)
	})
	got, err := bed.Client.CoreV1().Pods(quiet.Namespace).Get(ctx, quiet.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != v1.PodRunning {
		t.Errorf("quiet pod: %s, want it left running", describe(got))
	}
}

// TestEvictionDiskImages: unused images are collected before any pod is evicted. The
// node's root directory and its runtime's share one 300m filesystem (no dedicated image
// filesystem), which holds an unused 40Mi image; nodefs.available's threshold is 20Mi
// under what is free at start. A pod writing 40Mi into an emptyDir brings DiskPressure:
// removing the unused images frees enough, so the pod stays.
func TestEvictionDiskImages(t *testing.T) {
	if bed.Runtime() == testbed.RuntimeCRIO {
		t.Skip("the unused image is imported with ctr: containerd only")
	}
	t.Parallel() // with TestEvictionMemory: a runtime of its own, a filesystem of its own
	ctx := ctxFor(t, 4*time.Minute)
	name := "evict-images"
	fs := nodeRootDir(name)
	mountTmpfs(t, fs, "300m")
	// The runtime's folder is a bind mount of a folder of the same filesystem.
	rtDir := filepath.Join(bed.Dir, "runtimes", name)
	for _, d := range []string{filepath.Join(fs, "runtime"), rtDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("mount", "--bind", filepath.Join(fs, "runtime"), rtDir).CombinedOutput(); err != nil {
		t.Fatalf("bind mount: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", rtDir).Run() })
	rt, err := bed.StartNodeRuntime(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Stop() })
	random := make([]byte, 40<<20)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	img, err := testbed.NewImage([]testbed.File{{Path: "unused", Data: random, Mode: 0o644}}, ggcrv1.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := testbed.ImportImages(rt.Socket(), filepath.Join(t.TempDir(), "unused.tar"), map[string]ggcrv1.Image{gcUnusedImage: img}); err != nil {
		t.Fatal(err)
	}
	_, images, closeCRI, err := testbed.CRIClients(rt.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closeCRI() })
	var st unix.Statfs_t
	if err := unix.Statfs(fs, &st); err != nil {
		t.Fatal(err)
	}
	threshold := (int64(st.Bavail)*st.Bsize - 20<<20) >> 20
	t.Logf("free at start %dMi of %dMi; nodefs.available<%dMi", int64(st.Bavail)*st.Bsize>>20, int64(st.Blocks)*st.Bsize>>20, threshold)
	k := startKubelet(t, name, runtimeEndpointFlag+rt.Endpoint(), fmt.Sprintf("--eviction-hard=nodefs.available<%dMi", threshold),
		"--minimum-image-ttl-duration=0s", "--eviction-pressure-transition-period=20s")
	watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool {
		return isReady(n) && nodeCondition(n, v1.NodeDiskPressure) == v1.ConditionFalse
	})
	if !imagePresent(ctx, t, images, gcUnusedImage) {
		t.Fatal("the unused image is gone before any pressure")
	}
	p := newPod(k.NodeName, "sh", "-c", "dd if=/dev/zero of=/data/f bs=1M count=40; sleep 3600")
	p.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
	p.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{{Name: "data", MountPath: "/data"}}
	p = createPod(ctx, t, p)
	watchPod(ctx, t, p, "running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	waitNodeEventReason(ctx, t, k.NodeName, "EvictionThresholdMet", "Attempting to reclaim ephemeral-storage")
	waitImage(ctx, t, images, gcUnusedImage, false)
	// The condition may have come and gone by now: its event says it was there.
	waitNodeEventMatching(ctx, t, k.NodeName, "NodeHasDiskPressure", "", func(e *v1.Event) bool { return true })
	// The condition clears once the transition period has passed without pressure: the
	// rounds since then evicted nothing.
	watchNode(ctx, t, k.NodeName, func(n *v1.Node) bool { return nodeCondition(n, v1.NodeDiskPressure) == v1.ConditionFalse })
	got, err := bed.Client.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != v1.PodRunning {
		t.Errorf("writer: %s, want it running (the images freed enough)", describe(got))
	}
}
