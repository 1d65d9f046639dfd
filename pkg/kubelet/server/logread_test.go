package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// criLine is one runtime log line written at t0+sec.
func criLine(sec int, stream, tag, content string) string {
	return t0.Add(time.Duration(sec)*time.Second).Format(time.RFC3339Nano) + " " + stream + " " + tag + " " + content + "\n"
}

func sampleLog() string {
	return criLine(0, "stdout", "F", "one") +
		criLine(1, "stdout", "P", "tw") +
		criLine(2, "stderr", "F", "err-a") + // interleaved: the stdout line is still open
		criLine(3, "stdout", "F", "o") +
		"garbage that is no CRI line\n" +
		criLine(4, "stdout", "F", "three") +
		criLine(5, "stderr", "F", "err-b") +
		criLine(6, "stdout", "F", "") // an empty line
}

func read(t *testing.T, o logOptions) string {
	t.Helper()
	var out bytes.Buffer
	if err := readLog(context.Background(), strings.NewReader(sampleLog()), o, &out, nil); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestReadLog(t *testing.T) {
	all := logOptions{tail: -1}
	for _, tc := range []struct {
		name string
		o    func(o logOptions) logOptions
		want string
	}{
		// As upstream's ReadLogs: a part (P) is printed as it comes, without a newline.
		{"all, parts as they come", func(o logOptions) logOptions { return o }, "one\ntwerr-a\no\nthree\nerr-b\n\n"},
		{"tail 2", func(o logOptions) logOptions { o.tail = 2; return o }, "err-b\n\n"},
		{"tail counts runtime lines", func(o logOptions) logOptions { o.tail = 5; return o }, "err-a\no\nthree\nerr-b\n\n"},
		{"tail 0", func(o logOptions) logOptions { o.tail = 0; return o }, ""},
		{"tail more than lines", func(o logOptions) logOptions { o.tail = 100; return o }, "one\ntwerr-a\no\nthree\nerr-b\n\n"},
		{"limitBytes", func(o logOptions) logOptions { o.limit = 10; return o }, "one\ntwerr-"},
		{"limitBytes cuts a line", func(o logOptions) logOptions { o.limit = 6; return o }, "one\ntw"},
		{"since", func(o logOptions) logOptions { o.since = t0.Add(3 * time.Second); return o }, "o\nthree\nerr-b\n\n"},
		{"stdout only: its parts join up", func(o logOptions) logOptions { o.stream = "stdout"; return o }, "one\ntwo\nthree\n\n"},
		{"stderr only", func(o logOptions) logOptions { o.stream = "stderr"; return o }, "err-a\nerr-b\n"},
		{"timestamps start printed lines", func(o logOptions) logOptions { o.timestamps = true; return o },
			"2026-01-02T03:04:05Z one\n2026-01-02T03:04:06Z twerr-a\n2026-01-02T03:04:08Z o\n2026-01-02T03:04:09Z three\n2026-01-02T03:04:10Z err-b\n2026-01-02T03:04:11Z \n"},
		{"timestamps with stdout only", func(o logOptions) logOptions { o.timestamps, o.stream = true, "stdout"; return o },
			"2026-01-02T03:04:05Z one\n2026-01-02T03:04:06Z two\n2026-01-02T03:04:09Z three\n2026-01-02T03:04:11Z \n"},
		{"tail, since and limit together", func(o logOptions) logOptions { o.tail, o.since, o.limit = 2, t0.Add(time.Second), 3; return o }, "err"},
	} {
		if got := read(t, tc.o(all)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestReadLogEndsWithAPart: a container whose last output had no newline (cat of a file
// without one): the runtime writes it as a P line that no F line follows. It is printed,
// as upstream prints it (conformance: "Projected combined should project all components").
func TestReadLogEndsWithAPart(t *testing.T) {
	log := criLine(0, "stdout", "F", "first") + criLine(1, "stdout", "P", "pod-namesecret-value-1configmap-value-1")
	for _, o := range []logOptions{{tail: -1}, {tail: 1}, {tail: -1, follow: true}} {
		var out bytes.Buffer
		if err := readLog(context.Background(), strings.NewReader(log), o, &out, func(context.Context) bool { return false }); err != nil {
			t.Fatal(err)
		}
		want := "first\npod-namesecret-value-1configmap-value-1"
		if o.tail == 1 {
			want = "pod-namesecret-value-1configmap-value-1"
		}
		if out.String() != want {
			t.Errorf("%+v: %q, want %q", o, out.String(), want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func fastFollow(t *testing.T) {
	oldPoll, oldCheck := followPoll, statusCheck
	followPoll, statusCheck = 5*time.Millisecond, 20*time.Millisecond
	t.Cleanup(func() { followPoll, statusCheck = oldPoll, oldCheck })
}

func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for out.String() != want {
		if time.Now().After(deadline) {
			t.Fatalf("output %q, want %q", out.String(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadLogFollow appends to the file the way a runtime does (a line may arrive in two
// writes, a long line in parts) and stops the container: every line arrives, then readLog
// returns.
func TestReadLogFollow(t *testing.T) {
	fastFollow(t)
	path := filepath.Join(t.TempDir(), "0.log")
	if err := os.WriteFile(path, []byte(criLine(0, "stdout", "F", "old-1")+criLine(1, "stdout", "F", "old-2")), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	app, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()

	var running atomic.Bool
	running.Store(true)
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- readLog(context.Background(), f, logOptions{tail: 1, follow: true}, out, func(context.Context) bool { return running.Load() })
	}()
	waitOutput(t, out, "old-2\n")

	line := criLine(2, "stdout", "F", "new-1")
	app.WriteString(line[:10]) // half a runtime line: nothing yet
	time.Sleep(30 * time.Millisecond)
	if got := out.String(); got != "old-2\n" {
		t.Fatalf("half a line printed: %q", got)
	}
	app.WriteString(line[10:])
	waitOutput(t, out, "old-2\nnew-1\n")

	app.WriteString(criLine(3, "stdout", "P", "lo")) // a part arrives as it comes
	waitOutput(t, out, "old-2\nnew-1\nlo")
	app.WriteString(criLine(3, "stdout", "F", "ng"))
	waitOutput(t, out, "old-2\nnew-1\nlong\n")

	// The container writes its last line and stops: the line still arrives.
	app.WriteString(criLine(4, "stdout", "F", "last"))
	running.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end when the container stopped")
	}
	if got := out.String(); got != "old-2\nnew-1\nlong\nlast\n" {
		t.Errorf("output %q", got)
	}
}

func TestReadLogFollowEndsWithClient(t *testing.T) {
	fastFollow(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- readLog(ctx, strings.NewReader(sampleLog()), logOptions{tail: -1, follow: true}, &syncBuffer{}, func(context.Context) bool { return true })
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end with its request's context")
	}
}

func TestReadLogFollowLimit(t *testing.T) {
	fastFollow(t)
	out := &syncBuffer{}
	err := readLog(context.Background(), strings.NewReader(sampleLog()), logOptions{tail: -1, follow: true, limit: 4}, out,
		func(context.Context) bool { return true })
	if err != nil || out.String() != "one\n" {
		t.Errorf("limitBytes with follow: %q %v; want it to stop at the limit", out.String(), err)
	}
}
