package podworker

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/minikubelet/minikubelet/pkg/cri"
)

// Termination messages as upstream's convertToKubeContainerStatus: the file's last 4096
// bytes, else (FallbackToLogsOnError, a failure other than ContainerCannotRun) the log's
// tail, appended to the runtime's message.
func TestReadTerminationMessages(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fallback, file := string(v1.TerminationMessageFallbackToLogsOnError), string(v1.TerminationMessageReadFile)
	long := strings.Repeat("a", 100) + strings.Repeat("b", 4096)
	doneLog := write("done.log", "2026-11-23T10:00:00.000000001Z stdout P DONE\n")
	empty, missing := write("empty", ""), filepath.Join(dir, "missing")
	cases := []struct {
		name          string
		policy        string
		exit          int32
		reason, msg   string
		termFile, log string
		want          string
	}{
		{"file", file, 0, "", "", write("bye", "bye"), doneLog, "bye"},
		{"file's last 4096 bytes", file, 1, "", "", write("long", long), doneLog, strings.Repeat("b", 4096)},
		{"fallback: partial log line (echo -n DONE; false)", fallback, 1, "", "", empty, doneLog, "DONE"},
		{"fallback with the file missing", fallback, 1, "", "", missing, doneLog, "DONE"},
		{"fallback: file wins", fallback, 1, "", "", write("msg", "from file"), doneLog, "from file"},
		{"fallback: no log on success", fallback, 0, "", "", empty, doneLog, ""},
		{"fallback: none for ContainerCannotRun", fallback, 128, "ContainerCannotRun", "", empty, doneLog, ""},
		{"policy File: no log", file, 1, "", "", empty, doneLog, ""},
		{"after the runtime's message", fallback, 137, "OOMKilled", "oom", empty, doneLog, "oom: DONE"},
		{"log unreadable", fallback, 1, "", "", empty, missing,
			`Error on reading termination message from logs: failed to try resolving symlinks in path "` + missing + `": lstat ` + missing + `: no such file or directory`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := &cri.PodState{Containers: []cri.Container{{Name: "c", State: cri.StateExited, ExitCode: tc.exit, Reason: tc.reason,
				Message: tc.msg, TermMsgPolicy: tc.policy, TermMsgHostPath: tc.termFile, LogPath: tc.log}}}
			readTerminationMessages(st)
			if got := st.Containers[0].Message; got != tc.want {
				t.Errorf("message %q, want %q", got, tc.want)
			}
		})
	}
}

// The termination-message file is mode 0666 whatever the umask, as upstream, so that a
// container running as any user can write it.
func TestTerminationMessageFileWritable(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	w := &Workers{cfg: Config{RootDir: t.TempDir()}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u"}}
	c := &v1.Container{Name: "c", TerminationMessagePath: "/tmp/msg"}
	mounts, termPath, err := w.containerMounts(pod, c, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 1 || mounts[0].ContainerPath != "/tmp/msg" || mounts[0].HostPath != termPath {
		t.Fatalf("mounts %v, termination file %s", mounts, termPath)
	}
	fi, err := os.Stat(termPath)
	if err != nil || fi.Mode().Perm() != 0o666 {
		t.Errorf("termination file mode %v, %v; want 0666", fi.Mode().Perm(), err)
	}
}
