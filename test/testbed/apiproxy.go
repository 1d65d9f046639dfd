package testbed

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
)

// APIProxy is a TCP proxy on loopback in front of the API server, for one node's traffic
// only: the node's kubeconfig names the proxy (NodeKubeconfigThrough), so Pause cuts that
// node off the control plane, as a network partition would, while everything else still
// reaches the API server. TLS passes through untouched (the server's certificate names
// 127.0.0.1).
type APIProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	gate   chan struct{} // closed while traffic flows; open (blocking) while paused
	conns  map[net.Conn]bool
	closed bool
}

// StartAPIProxy listens on a free loopback port and forwards to target (host:port).
func StartAPIProxy(target string) (*APIProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &APIProxy{ln: ln, target: target, gate: make(chan struct{}), conns: map[net.Conn]bool{}}
	close(p.gate)
	go p.serve()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *APIProxy) Addr() string { return p.ln.Addr().String() }

// Pause stalls the node's API traffic: connections stay open but carry nothing either
// way, new ones are accepted and never answered, until Resume. The node's requests time
// out as they would behind a partition (no quick "connection refused").
func (p *APIProxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default: // already paused
	}
}

// Resume lets the stalled traffic flow again.
func (p *APIProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

// Paused reports whether traffic is stalled.
func (p *APIProxy) Paused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		return false
	default:
		return true
	}
}

// Close stops listening and closes every connection.
func (p *APIProxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.Resume() // wake copies waiting at the gate so they see their closed connections
	return p.ln.Close()
}

func (p *APIProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

// track records c so Close can close it; false if the proxy is closed already.
func (p *APIProxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on && p.closed {
		return false
	}
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *APIProxy) currentGate() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gate
}

func (p *APIProxy) handle(c net.Conn) {
	defer c.Close()
	if !p.track(c, true) {
		return
	}
	defer p.track(c, false)
	<-p.currentGate() // a paused proxy does not even connect on
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	if !p.track(up, true) {
		return
	}
	defer p.track(up, false)
	done := make(chan struct{}, 2)
	go func() { p.copy(up, c); done <- struct{}{} }()
	go func() { p.copy(c, up); done <- struct{}{} }()
	<-done // one side ended: close both (deferred), which ends the other copy
}

// copy forwards src to dst, holding each chunk at the gate while paused.
func (p *APIProxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			<-p.currentGate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil { // EOF or closed: the deferred closes in handle end the other side
			return
		}
	}
}

// NodeKubeconfigThrough writes a kubeconfig for system:node:<name> (as NodeKubeconfig)
// whose server is the proxy instead of the API server.
func (b *Bed) NodeKubeconfigThrough(name string, p *APIProxy) (string, error) {
	crt, key, err := b.PKI.Issue("node-"+name, "system:node:"+name, []string{"system:nodes"}, nil)
	if err != nil {
		return "", err
	}
	path := filepath.Join(b.Dir, "node-"+name+"-proxied.kubeconfig")
	return path, WriteKubeconfig(path, "https://"+p.Addr(), b.PKI.CAFile(), crt, key)
}

// APIServerHostPort is the API server's host:port (for a proxy in front of it).
func (b *Bed) APIServerHostPort() string { return strings.TrimPrefix(b.APIServerURL, "https://") }
