package testbed

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// TestAPIProxyPause: traffic flows, stalls both ways while paused (an open connection and
// a new one), and flows again after Resume with nothing lost.
func TestAPIProxyPause(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // line echo
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					_, _ = c.Write([]byte(l))
				}
			}()
		}
	}()
	p, err := StartAPIProxy(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	echo := func(c net.Conn, r *bufio.Reader, msg string, wait time.Duration) (string, error) {
		_ = c.SetDeadline(time.Now().Add(wait))
		if _, err := c.Write([]byte(msg + "\n")); err != nil {
			return "", err
		}
		return r.ReadString('\n')
	}
	if got, err := echo(c, r, "one", 5*time.Second); err != nil || got != "one\n" {
		t.Fatalf("before pause: %q, %v", got, err)
	}
	p.Pause()
	if got, err := echo(c, r, "two", 300*time.Millisecond); err == nil {
		t.Fatalf("paused proxy passed %q", got)
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	r2 := bufio.NewReader(c2)
	if got, err := echo(c2, r2, "new", 300*time.Millisecond); err == nil {
		t.Fatalf("paused proxy served a new connection: %q", got)
	}
	p.Resume()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := r.ReadString('\n'); err != nil || got != "two\n" {
		t.Fatalf("held message after resume: %q, %v", got, err)
	}
	_ = c2.SetDeadline(time.Now().Add(5 * time.Second))
	if got, err := r2.ReadString('\n'); err != nil || got != "new\n" {
		t.Fatalf("new connection after resume: %q, %v", got, err)
	}
}

// TestRegistryFailPulls: a failing repository answers the status set for manifests and
// blobs; others and the repository after RestorePulls are served.
func TestRegistryFailPulls(t *testing.T) {
	r, err := startRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, repo := range []string{"a", "b"} {
		if _, err := r.Push(repo, "v1", img); err != nil {
			t.Fatal(err)
		}
	}
	get := func(repo string) error {
		ref, err := name.ParseReference(r.Host+"/"+repo+":v1", name.Insecure)
		if err != nil {
			return err
		}
		_, err = remote.Image(ref, remote.WithRetryStatusCodes()) // no retries of the 503
		return err
	}
	r.FailPulls("a", http.StatusServiceUnavailable)
	var te *transport.Error
	if err := get("a"); !errors.As(err, &te) || te.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("pull of a failing repository: %v, want a 503", err)
	}
	if err := get("b"); err != nil {
		t.Errorf("another repository: %v", err)
	}
	r.RestorePulls("a")
	if err := get("a"); err != nil {
		t.Errorf("after RestorePulls: %v", err)
	}
}
