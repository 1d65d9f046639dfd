package testbed

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is one process the test bed started. It runs in its own session so that make up
// can leave it running; its PID is recorded in pids/<name> so only our own processes
// are ever stopped.
type Proc struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	pidFile string
	done    chan struct{}
	err     error
	// group: the process is a launcher (nsenter into a PID namespace) whose child is the
	// program and does not pass signals on; they go to the whole process group, and Stop
	// and Kill wait for the group to be gone.
	group bool
}

// start launches bin with args, output to logs/<name>.log.
func (b *Bed) start(name, bin string, args []string, env []string) (*Proc, error) {
	logPath := filepath.Join(b.Dir, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{}),
		pidFile: filepath.Join(b.Dir, "pids", name)}
	_ = os.MkdirAll(filepath.Dir(p.pidFile), 0o755)
	_ = os.WriteFile(p.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the process ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process (to its group for a launcher).
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.group {
		return syscall.Kill(-p.cmd.Process.Pid, sig)
	}
	return p.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM, waits up to grace, then SIGKILLs the whole process group.
func (p *Proc) Stop(grace time.Duration) error {
	if p == nil {
		return nil
	}
	_ = p.Signal(syscall.SIGTERM)
	deadline := time.After(grace)
	select {
	case <-p.done:
		if p.group && !p.groupGone(deadline) {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			p.groupGone(time.After(5 * time.Second))
		}
	case <-deadline:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if p.group {
			p.groupGone(time.After(5 * time.Second))
		}
	}
	_ = os.Remove(p.pidFile)
	return nil
}

// Kill SIGKILLs the process (as a crash would) and waits for it.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.done
	if p.group {
		p.groupGone(time.After(5 * time.Second))
	}
	_ = os.Remove(p.pidFile)
}

// groupGone waits until no process of p's group is left, or deadline fires.
func (p *Proc) groupGone(deadline <-chan time.Time) bool {
	for syscall.Kill(-p.cmd.Process.Pid, 0) == nil {
		select {
		case <-deadline:
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	return true
}

// Wait blocks until the process exits and returns its error.
func (p *Proc) Wait() error { <-p.done; return p.err }

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string { return TailFile(p.LogPath, n) }

// TailFile is the last n lines of a file (the error, if it cannot be read).
func TailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// killRecorded stops processes recorded in dir/pids by an earlier run (make down, or a
// test run that died) whose names start with one of prefixes (all if none), checking each
// PID still runs a command that mentions dir. All get SIGTERM at once, then SIGKILL after 10s.
func killRecorded(dir string, prefixes ...string) {
	entries, _ := os.ReadDir(filepath.Join(dir, "pids"))
	var pids []int
	for _, e := range entries {
		if len(prefixes) > 0 && !hasAnyPrefix(e.Name(), prefixes) {
			continue
		}
		path := filepath.Join(dir, "pids", e.Name())
		b, _ := os.ReadFile(path)
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pid > 1 && processMatches(pid, dir) {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			pids = append(pids, pid)
		}
		_ = os.Remove(path)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) && processMatches(pid, dir) {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// processMatches checks the process's command line mentions the test bed folder, so a
// recycled PID of somebody else's process is never signalled.
func processMatches(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), dir)
}

// freePort returns a TCP port free on 127.0.0.1 right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitFor polls cond until it returns nil or timeout; the last error is returned.
func waitFor(timeout time.Duration, p *Proc, cond func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return nil
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, p.Tail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil {
		err = errors.New("timed out")
	}
	return err
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// killShimsOf SIGKILLs the containerd shims serving the containerd at socket (their
// command line names it after -address) and waits a little for them to be gone, so that
// what comes after (the shared runtime folders) does not take them for live.
func killShimsOf(socket string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var killed []int
	for _, f := range procs {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 0 || !strings.Contains(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == socket {
				if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
					killed = append(killed, pid)
				}
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range killed {
		for Running(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Running says whether process pid exists and is not a zombie waiting to be reaped.
func Running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// "pid (comm) state ...": comm may hold anything, the state follows its last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// closeInheritedFiles marks every file this process inherited beyond stdin, stdout and
// stderr close-on-exec, so the bed's processes do not hold them: a lock the caller took
// (e.g. flock(1)'s, which serialises heavy runs) would otherwise stay held by a bed whose
// test binary was killed, and every later run would wait on it.
func closeInheritedFiles() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}
