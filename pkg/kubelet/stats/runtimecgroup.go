package stats

import (
	"context"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// rtCgroupTTL: how long the runtime's cgroup is trusted (upstream re-resolves its system
// containers every 5 minutes too); the runtime may restart into another one.
const rtCgroupTTL = 5 * time.Minute

// runtimeCgroup is the runtime system container: runtimeCgroups when configured, else the
// cgroup of the process that serves the runtime's socket (found by its peer credentials).
func (p *Provider) runtimeCgroup(ctx context.Context, now time.Time) cgroupRef {
	if p.cfg.RuntimeCgroups != "" {
		return sameCgroup(p.cfg.RuntimeCgroups)
	}
	p.mu.Lock()
	if !p.rtCgroupAt.IsZero() && now.Sub(p.rtCgroupAt) < rtCgroupTTL {
		defer p.mu.Unlock()
		return p.rtCgroup
	}
	p.mu.Unlock()
	var cg cgroupRef
	if pid := socketPeer(ctx, p.cfg.RuntimeEndpoint); pid > 0 {
		cg = p.host.processCgroup(strconv.Itoa(pid))
	}
	p.mu.Lock()
	p.rtCgroup, p.rtCgroupAt = cg, now
	p.mu.Unlock()
	return cg
}

// socketPeer returns the pid of the process listening on a unix socket endpoint, or 0.
func socketPeer(ctx context.Context, endpoint string) int {
	path := strings.TrimPrefix(endpoint, "unix://")
	if path == "" || !strings.HasPrefix(path, "/") {
		return 0
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "unix", path)
	if err != nil {
		return 0
	}
	defer conn.Close()
	raw, err := conn.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0
	}
	pid := 0
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}
