package e2e

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

// TestReliabilityLogRotation: a container printing in a loop cannot fill the disk: its log
// is rotated at containerLogMaxSize, older files compressed, at most containerLogMaxFiles
// kept, and `kubectl logs` keeps working on the live file.
func TestReliabilityLogRotation(t *testing.T) {
	ctx := ctxFor(t, 2*time.Minute)
	k := startKubelet(t, "rel-logs", "--container-log-max-size=64Ki", "--container-log-max-files=3")
	watchNode(ctx, t, k.NodeName, isReady)
	// About 40 KB/s of 2000-character lines.
	pod := newPod(k.NodeName, "sh", "-c", `i=0; while true; do i=$((i+1)); echo "line $i $(head -c 1990 /dev/zero | tr '\0' x)"; sleep 0.05; done`)
	p := watchPod(ctx, t, createPod(ctx, t, pod), "Running", func(p *v1.Pod) bool { return p.Status.Phase == v1.PodRunning })
	dir := filepath.Join(k.RootDir, "pod-logs", p.Namespace+"_"+p.Name+"_"+string(p.UID), "main")
	// A follower started before any rotation must keep receiving lines across them.
	follow, err := bed.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &v1.PodLogOptions{Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	var lastFollowed atomic.Int64
	go func() {
		sc := bufio.NewScanner(follow)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 1 {
				n, _ := strconv.ParseInt(f[1], 10, 64)
				lastFollowed.Store(n)
			}
		}
	}()

	var files []string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		files, _ = filepath.Glob(filepath.Join(dir, "0.log*"))
		gz, _ := filepath.Glob(filepath.Join(dir, "0.log.*.gz"))
		if len(gz) > 0 && len(files) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rotation with compression after 60s: %v", files)
		}
	}
	// Keep watching two more monitor periods: never more than 3 files, live file bounded.
	for end := time.Now().Add(21 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		files, _ = filepath.Glob(filepath.Join(dir, "0.log*"))
		if len(files) > 3 {
			t.Fatalf("%d log files kept, want at most 3: %v", len(files), files)
		}
		if fi, err := os.Stat(filepath.Join(dir, "0.log")); err == nil && fi.Size() > 2<<20 {
			t.Fatalf("live log grew to %d bytes", fi.Size())
		}
	}
	rc, err := bed.Client.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &v1.PodLogOptions{TailLines: ptr(int64(1))}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.HasPrefix(string(b), "line ") {
		t.Fatalf("kubectl logs after rotation: %q", b)
	}
	latest, _ := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	if got := lastFollowed.Load(); latest-got > 100 {
		t.Errorf("kubectl logs -f stopped at line %d while the container is at line %d (lost across rotation)", got, latest)
	}
}
