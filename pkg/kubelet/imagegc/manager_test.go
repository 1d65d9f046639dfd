package imagegc

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critest "k8s.io/cri-api/pkg/apis/testing"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/minikubelet/minikubelet/pkg/cri/critesting"
)

type fakeFs struct {
	capacity, available uint64
	err                 error
}

func (f *fakeFs) ImageFsStats(context.Context) (*statsapi.FsStats, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &statsapi.FsStats{CapacityBytes: &f.capacity, AvailableBytes: &f.available}, nil
}

type fixture struct {
	rt       *critest.FakeRuntimeService
	img      *critest.FakeImageService
	fs       *fakeFs
	recorder *record.FakeRecorder
	m        *Manager
}

func newFixture(t *testing.T, p Policy) *fixture {
	f := &fixture{rt: critest.NewFakeRuntimeService(), img: critest.NewFakeImageService(), fs: &fakeFs{capacity: 1000, available: 100},
		recorder: record.NewFakeRecorder(10)}
	var err error
	f.m, err = New(Config{Runtime: critesting.NewFake(f.rt, f.img), ImageFs: f.fs, Recorder: f.recorder,
		Node: &v1.ObjectReference{Kind: "Node", Name: "n1", UID: "n1"}, Policy: p, Period: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) addImage(id, tag string, size uint64, pinned bool) {
	f.img.Images[id] = &runtimeapi.Image{Id: id, RepoTags: []string{tag}, Size: size, Pinned: pinned}
}

// addContainer adds a container (exited: still in use, as upstream) running image ref,
// mounting the image volumes vols.
func (f *fixture) addContainer(id, image, imageRef string, vols ...string) {
	var mounts []*runtimeapi.Mount
	for _, v := range vols {
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: "/v", Image: &runtimeapi.ImageSpec{Image: v}})
	}
	f.rt.Containers[id] = &critest.FakeContainer{ContainerStatus: runtimeapi.ContainerStatus{Id: id,
		Metadata: &runtimeapi.ContainerMetadata{Name: id}, State: runtimeapi.ContainerState_CONTAINER_EXITED,
		Image: &runtimeapi.ImageSpec{Image: image}, ImageRef: imageRef, Mounts: mounts}}
}

func (f *fixture) images() []string {
	var out []string
	for id := range f.img.Images {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// Over the fake runtime: in-use images (by ID, by tag, as image volumes) and pinned ones
// stay, the rest go least recently used first once older than the minimum age; too
// little to free is a FreeDiskSpaceFailed event.
func TestGarbageCollect(t *testing.T) {
	f := newFixture(t, Policy{HighThresholdPercent: 50, LowThresholdPercent: 40, MinAge: time.Minute})
	f.addImage("sha256:pause", "pause:3", 100, true)
	f.addImage("sha256:app", "app:1", 100, false)
	f.addImage("sha256:tagged", "tagged:1", 100, false)
	f.addImage("sha256:vol", "vol:1", 100, false)
	f.addImage("sha256:old", "old:1", 100, false)
	f.addImage("sha256:older", "older:1", 100, false)
	f.addContainer("c1", "app:1", "sha256:app", "sha256:vol")
	f.addContainer("c2", "tagged:1", "")
	f.addContainer("c3", "older:1", "sha256:older")
	ctx := context.Background()
	// First sight: everything is younger than the minimum age. Usage 90%: 500 bytes to
	// free, nothing eligible.
	err := f.m.GarbageCollect(ctx, t0)
	if err == nil || !strings.Contains(err.Error(), "(90% of 1000 B used)") || !strings.Contains(err.Error(), "(freed 0 bytes)") {
		t.Fatalf("err %v", err)
	}
	if ev := f.events(); len(ev) != 1 || !strings.HasPrefix(ev[0], "Warning FreeDiskSpaceFailed Insufficient free disk space") {
		t.Errorf("events %q", ev)
	}
	if got := f.images(); len(got) != 6 {
		t.Errorf("images %v", got)
	}
	// "older" was last used at t0; "old" never: "old" goes first, then "older" (after its
	// container is gone), and 200 bytes are not enough.
	delete(f.rt.Containers, "c3")
	f.img.Called = nil
	err = f.m.GarbageCollect(ctx, t0.Add(2*time.Minute))
	if want := []string{"sha256:app", "sha256:pause", "sha256:tagged", "sha256:vol"}; !slices.Equal(f.images(), want) {
		t.Errorf("images %v, want %v", f.images(), want)
	}
	if err == nil || !strings.Contains(err.Error(), "(freed 200 bytes)") {
		t.Errorf("err %v", err)
	}
	// Enough space: nothing happens.
	f.fs.available = 900
	f.events()
	if err := f.m.GarbageCollect(ctx, t0.Add(3*time.Minute)); err != nil || len(f.images()) != 4 || len(f.events()) != 0 {
		t.Errorf("below the threshold: %v %v", err, f.images())
	}
}

// A removal that fails is tried again next round; collection goes on with the next
// image (least recently used first) and reports the failure.
func TestGarbageCollectRemovalFails(t *testing.T) {
	f := newFixture(t, Policy{HighThresholdPercent: 50, LowThresholdPercent: 40, MinAge: time.Second})
	f.fs.available = 450 // 55%: 150 bytes to free
	for _, id := range []string{"a", "b", "c"} {
		f.addImage(id, id+":1", 100, false)
	}
	f.addContainer("ca", "a:1", "a")
	f.addContainer("cb", "b:1", "b")
	ctx := context.Background()
	if err := f.m.GarbageCollect(ctx, t0); err == nil {
		t.Fatal("nothing eligible yet: want an error")
	}
	// b still in use; c (never used) goes before a (used at t0), and fails.
	delete(f.rt.Containers, "ca")
	f.img.InjectError("RemoveImage", errors.New("disk is read-only"))
	f.img.Called = nil
	err := f.m.GarbageCollect(ctx, t0.Add(time.Minute))
	if err == nil || !strings.Contains(err.Error(), "disk is read-only") || !strings.Contains(err.Error(), "freed 100 bytes") {
		t.Fatalf("err %v", err)
	}
	if got := f.images(); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("images %v, want [b c]", got)
	}
	if n := strings.Count(strings.Join(f.img.Called, " "), "RemoveImage"); n != 2 {
		t.Errorf("calls %v: want 2 removals", f.img.Called)
	}
}

// The maximum age removes images unused for longer, whatever the usage.
func TestGarbageCollectMaxAge(t *testing.T) {
	f := newFixture(t, Policy{HighThresholdPercent: 85, LowThresholdPercent: 80, MinAge: time.Minute, MaxAge: time.Hour})
	f.fs.available = 900
	f.addImage("stale", "stale:1", 1, false)
	f.addImage("used", "used:1", 1, false)
	f.addImage("pause", "pause:1", 1, true)
	f.addContainer("c", "used:1", "used")
	f.m.began = t0
	ctx := context.Background()
	if err := f.m.GarbageCollect(ctx, t0); err != nil || len(f.images()) != 3 {
		t.Fatalf("%v %v", err, f.images())
	}
	if err := f.m.GarbageCollect(ctx, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := f.images(); !slices.Equal(got, []string{"pause", "used"}) {
		t.Errorf("images %v", got)
	}
}

// Failures: the image filesystem unreadable is an error; capacity 0 an
// InvalidDiskCapacity event.
func TestGarbageCollectStatsFailures(t *testing.T) {
	f := newFixture(t, Policy{HighThresholdPercent: 85, LowThresholdPercent: 80})
	f.fs.err = errors.New("no image fs")
	if err := f.m.GarbageCollect(context.Background(), t0); err == nil || err.Error() != "no image fs" {
		t.Errorf("err %v", err)
	}
	f.fs = &fakeFs{}
	f.m.cfg.ImageFs = f.fs
	if err := f.m.GarbageCollect(context.Background(), t0); !errors.Is(err, ErrNoCapacity) {
		t.Errorf("err %v", err)
	}
	if ev := f.events(); len(ev) != 1 || ev[0] != "Warning InvalidDiskCapacity invalid capacity 0 on image filesystem" {
		t.Errorf("events %q", ev)
	}
	f.img.InjectError("ListImages", errors.New("runtime down"))
	if err := f.m.GarbageCollect(context.Background(), t0); err == nil || !strings.Contains(err.Error(), "runtime down") {
		t.Errorf("err %v", err)
	}
}

// Run: ImageGCFailed only for a second failure in a row, as upstream; a disabled
// policy returns at once.
func TestRunEvents(t *testing.T) {
	f := newFixture(t, Policy{HighThresholdPercent: 85, LowThresholdPercent: 80})
	f.fs.err = errors.New("no image fs")
	f.m.cfg.Period = 10 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go f.m.Run(ctx)
	select {
	case e := <-f.recorder.Events:
		if e != "Warning ImageGCFailed no image fs" {
			t.Errorf("event %q", e)
		}
	case <-ctx.Done():
		t.Fatal("no ImageGCFailed event")
	}
	cancel()

	d := newFixture(t, Policy{HighThresholdPercent: 100, LowThresholdPercent: 80})
	done := make(chan struct{})
	go func() { d.m.Run(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("disabled: Run did not return")
	}
	if len(d.img.Called) != 0 {
		t.Errorf("disabled: runtime called %v", d.img.Called)
	}
}
