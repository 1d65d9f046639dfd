package logs

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type fakeRuntime struct {
	logs    map[string]string
	reopens []string
	fail    bool
}

func (f *fakeRuntime) RunningLogs(context.Context) (map[string]string, error) { return f.logs, nil }
func (f *fakeRuntime) ReopenContainerLog(_ context.Context, id string) error {
	if f.fail {
		return errors.New("reopen refused")
	}
	f.reopens = append(f.reopens, id)
	// The runtime starts a fresh file at the same path.
	return os.WriteFile(f.logs[id], nil, 0o640)
}

func TestRotateKeepsAtMostMaxFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	rt := &fakeRuntime{logs: map[string]string{"c1": path}}
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	m, err := New(rt, Config{MaxSize: 100, MaxFiles: 3, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	write("small")
	m.RotateAll(context.Background())
	if len(rt.reopens) != 0 {
		t.Fatal("rotated a log below the size limit")
	}
	for i := 0; i < 5; i++ {
		write(strings.Repeat(string(rune('a'+i)), 150))
		m.RotateAll(context.Background())
		now = now.Add(time.Second)
	}
	files, _ := filepath.Glob(path + "*")
	if len(files) != 3 {
		t.Fatalf("files %v, want the live log and 2 rotated", files)
	}
	// Newest rotated stays plain, the older one is compressed; contents are the last two.
	plain, _ := os.ReadFile(path + ".20261123-100004")
	if string(plain) != strings.Repeat("e", 150) {
		t.Errorf("newest rotated = %q", plain)
	}
	f, err := os.Open(path + ".20261123-100003.gz")
	if err != nil {
		t.Fatalf("older rotated file not compressed: %v (files %v)", err, files)
	}
	zr, _ := gzip.NewReader(f)
	b, _ := io.ReadAll(zr)
	f.Close()
	if string(b) != strings.Repeat("d", 150) {
		t.Errorf("compressed content = %q", b)
	}
	if len(rt.reopens) != 5 {
		t.Errorf("%d reopens, want 5", len(rt.reopens))
	}
}

func TestRotateRenamesBackWhenReopenFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	if err := os.WriteFile(path, []byte(strings.Repeat("x", 200)), 0o640); err != nil {
		t.Fatal(err)
	}
	rt := &fakeRuntime{logs: map[string]string{"c1": path}, fail: true}
	m, _ := New(rt, Config{MaxSize: 100, MaxFiles: 5})
	m.RotateAll(context.Background())
	if b, err := os.ReadFile(path); err != nil || len(b) != 200 {
		t.Fatalf("log not restored after a failed reopen: %d bytes, %v", len(b), err)
	}
	if files, _ := filepath.Glob(path + ".*"); len(files) != 0 {
		t.Errorf("rotated files left: %v", files)
	}
}

func TestNewRejectsBadLimits(t *testing.T) {
	if _, err := New(&fakeRuntime{}, Config{MaxSize: 10, MaxFiles: 1}); err == nil || !strings.Contains(err.Error(), "containerLogMaxFiles") {
		t.Errorf("MaxFiles 1: %v", err)
	}
	if _, err := New(&fakeRuntime{}, Config{MaxSize: 0, MaxFiles: 5}); err == nil || !strings.Contains(err.Error(), "containerLogMaxSize") {
		t.Errorf("MaxSize 0: %v", err)
	}
}
