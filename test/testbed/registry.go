package testbed

import (
	"crypto/subtle"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is an OCI registry served in-process on 127.0.0.1 for pull tests. Repositories
// under "private/" need basic auth with User/Password.
type Registry struct {
	Host           string // 127.0.0.1:port
	User, Password string
	srv            *http.Server

	mu            sync.Mutex
	manifestPulls map[string]int // repo -> manifest requests (a pull resolves with HEAD or GET)
	failing       map[string]int // repo -> HTTP status every request for it gets (FailPulls)

	challengePings atomic.Bool // ChallengePings
}

// ChallengePings makes the registry answer an unauthenticated ping (GET /v2/) with a
// basic-auth challenge, as a registry with htpasswd users does. containers/image (CRI-O's
// puller) decides from the ping alone whether to send credentials: without a challenge
// there it never sends them, and pulls from private/ fail even with a pull secret.
// containerd answers a challenge on any request, so containerd beds leave it off.
func (r *Registry) ChallengePings() { r.challengePings.Store(true) }

func startRegistry() (*Registry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Registry{Host: ln.Addr().String(), User: "puller", Password: "s3cret", manifestPulls: map[string]int{}, failing: map[string]int{}}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.challengePings.Load() && req.URL.Path == "/v2/" && req.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="testbed"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if strings.HasPrefix(req.URL.Path, "/v2/private/") {
			u, p, ok := req.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(r.User)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(r.Password)) != 1 {
				w.Header().Set("WWW-Authenticate", `Basic realm="testbed"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		if repo, _, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/manifests/"); ok && (req.Method == http.MethodGet || req.Method == http.MethodHead) {
			r.mu.Lock()
			r.manifestPulls[repo]++
			r.mu.Unlock()
		}
		if status := r.failStatus(req.URL.Path); status != 0 {
			http.Error(w, "testbed: pulls of this repository fail", status)
			return
		}
		inner.ServeHTTP(w, req)
	})}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// Push uploads img as repo:tag and returns the full reference containerd pulls.
func (r *Registry) Push(repo, tag string, img v1.Image) (string, error) {
	ref := fmt.Sprintf("%s/%s:%s", r.Host, repo, tag)
	t, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: r.User, Password: r.Password})
	if err := remote.Write(t, img, remote.WithAuth(auth)); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
}

// ManifestPulls counts manifest requests for repo so far: every pull attempt resolves the
// manifest (HEAD or GET) even when the layers are already present.
func (r *Registry) ManifestPulls(repo string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.manifestPulls[repo]
}

// Close stops the registry.
func (r *Registry) Close() error { return r.srv.Close() }

// FailPulls makes every request for repo (manifests and blobs) answer status (e.g. 503)
// until RestorePulls: a pull of it fails as a broken or overloaded registry makes it fail.
func (r *Registry) FailPulls(repo string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failing[repo] = status
}

// RestorePulls undoes FailPulls.
func (r *Registry) RestorePulls(repo string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.failing, repo)
}

// failStatus is the status FailPulls set for the repository a /v2/<repo>/{manifests,blobs}/
// path names, or 0.
func (r *Registry) failStatus(path string) int {
	rest := strings.TrimPrefix(path, "/v2/")
	for _, sep := range []string{"/manifests/", "/blobs/"} {
		if repo, _, ok := strings.Cut(rest, sep); ok {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.failing[repo]
		}
	}
	return 0
}
