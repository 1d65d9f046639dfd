package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
)

// User is who made a request.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// Well-known users and groups (upstream's k8s.io/apiserver/pkg/authentication/user).
const (
	Anonymous        = "system:anonymous"
	AllUnauthed      = "system:unauthenticated"
	AllAuthenticated = "system:authenticated"
)

const cacheSize = 4096

var errInvalidToken = errors.New("invalid bearer token")

// authenticator identifies a request's user as the upstream kubelet does: a client
// certificate verified against the client CA (user = CN, groups = O), else a bearer token
// through a TokenReview when the webhook is enabled (results cached for cacheTTL), else
// system:anonymous when anonymous requests are enabled. A token that does not
// authenticate fails the request even if anonymous requests are enabled.
type authenticator struct {
	anonymous bool
	tokens    kubernetes.Interface // nil: tokens are not checked
	cache     *cache.LRUExpireCache
	ttl       time.Duration
}

func newAuthenticator(c kubeletv1beta1.KubeletAuthentication, client kubernetes.Interface) *authenticator {
	a := &authenticator{anonymous: c.Anonymous.Enabled != nil && *c.Anonymous.Enabled}
	if c.Webhook.Enabled != nil && *c.Webhook.Enabled {
		a.tokens, a.ttl, a.cache = client, c.Webhook.CacheTTL.Duration, cache.NewLRUExpireCache(cacheSize)
	}
	return a
}

// authenticate returns the request's user, or nil if it has none.
func (a *authenticator) authenticate(r *http.Request) (*User, error) {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		subj := r.TLS.VerifiedChains[0][0].Subject
		if subj.CommonName != "" {
			return withAuthenticated(&User{Name: subj.CommonName, Groups: slices.Clone(subj.Organization)}), nil
		}
	}
	if token, ok := bearerToken(r); ok && a.tokens != nil {
		u, err := a.reviewToken(r.Context(), token)
		if err != nil {
			return nil, err
		}
		if u == nil {
			return nil, errInvalidToken
		}
		return withAuthenticated(u), nil
	}
	if a.anonymous {
		return &User{Name: Anonymous, Groups: []string{AllUnauthed}}, nil
	}
	return nil, nil
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// reviewToken asks the API server who the token belongs to (nil: nobody). Answers, both
// ways, are cached for the TTL under the token's hash; errors are not.
func (a *authenticator) reviewToken(ctx context.Context, token string) (*User, error) {
	sum := sha256.Sum256([]byte(token))
	key := hex.EncodeToString(sum[:])
	if v, ok := a.cache.Get(key); ok {
		return v.(*User), nil
	}
	tr, err := a.tokens.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("token review: %w", err)
	}
	var u *User
	if st := tr.Status; st.Authenticated {
		u = &User{Name: st.User.Username, UID: st.User.UID, Groups: st.User.Groups}
		if len(st.User.Extra) > 0 {
			u.Extra = map[string][]string{}
			for k, v := range st.User.Extra {
				u.Extra[k] = v
			}
		}
	}
	if a.ttl > 0 {
		a.cache.Add(key, u, a.ttl)
	}
	return u, nil
}

func withAuthenticated(u *User) *User {
	if !slices.Contains(u.Groups, AllAuthenticated) {
		u.Groups = append(u.Groups, AllAuthenticated)
	}
	return u
}

// authorizer decides whether a user may do what a request does: always (AlwaysAllow), or
// as a SubjectAccessReview for the node's resource answers (Webhook), with allowed and
// denied answers cached for their TTLs.
type authorizer struct {
	client            kubernetes.Interface // nil: AlwaysAllow
	cache             *cache.LRUExpireCache
	allowTTL, denyTTL time.Duration
}

func newAuthorizer(c kubeletv1beta1.KubeletAuthorization, client kubernetes.Interface) (*authorizer, error) {
	switch c.Mode {
	case kubeletv1beta1.KubeletAuthorizationModeAlwaysAllow:
		return &authorizer{}, nil
	case kubeletv1beta1.KubeletAuthorizationModeWebhook:
		return &authorizer{client: client, cache: cache.NewLRUExpireCache(cacheSize),
			allowTTL: c.Webhook.CacheAuthorizedTTL.Duration, denyTTL: c.Webhook.CacheUnauthorizedTTL.Duration}, nil
	default:
		return nil, fmt.Errorf("authorization.mode (--authorization-mode): %q is not AlwaysAllow or Webhook", c.Mode)
	}
}

// authorize reports whether u may verb the node's subresource.
func (a *authorizer) authorize(ctx context.Context, u *User, node, verb, subresource string) (bool, error) {
	if a.client == nil {
		return true, nil
	}
	spec := authzv1.SubjectAccessReviewSpec{
		User: u.Name, UID: u.UID, Groups: u.Groups,
		ResourceAttributes: &authzv1.ResourceAttributes{
			Verb: verb, Version: "v1", Resource: "nodes", Subresource: subresource, Name: node,
		},
	}
	if len(u.Extra) > 0 {
		spec.Extra = map[string]authzv1.ExtraValue{}
		for k, v := range u.Extra {
			spec.Extra[k] = v
		}
	}
	keyJSON, err := json.Marshal(spec) // maps marshal in key order: a stable key
	if err != nil {
		return false, err
	}
	key := string(keyJSON)
	if v, ok := a.cache.Get(key); ok {
		return v.(bool), nil
	}
	sar, err := a.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("subject access review: %w", err)
	}
	allowed := sar.Status.Allowed && !sar.Status.Denied
	if ttl := map[bool]time.Duration{true: a.allowTTL, false: a.denyTTL}[allowed]; ttl > 0 {
		a.cache.Add(key, allowed, ttl)
	}
	return allowed, nil
}

// requestAttributes maps a request to the authorization attributes upstream's kubelet uses:
// the verb from the HTTP method, and the node subresources to check (access to any one of
// them is enough). With upstream's fine-grained kubelet authorization (GA): /pods, /healthz
// and /configz check their own subresource and then proxy; /stats, /metrics and /logs have
// their own; everything else (containerLogs, exec, attach, portForward, run) is proxy.
func requestAttributes(method, path string) (verb string, subresources []string) {
	switch method {
	case http.MethodPost:
		verb = "create"
	case http.MethodGet:
		verb = "get"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
	}
	switch {
	case isSubpath(path, "/pods"), isSubpath(path, "/runningpods"):
		subresources = append(subresources, "pods")
	case isSubpath(path, "/healthz"):
		subresources = append(subresources, "healthz")
	case isSubpath(path, "/configz"):
		subresources = append(subresources, "configz")
	case isSubpath(path, "/statusz"):
		subresources = append(subresources, "statusz")
	}
	switch {
	case isSubpath(path, "/stats"):
		subresources = append(subresources, "stats")
	case isSubpath(path, "/metrics"):
		subresources = append(subresources, "metrics")
	case isSubpath(path, "/logs"):
		subresources = append(subresources, "log")
	case isSubpath(path, "/checkpoint"):
		subresources = append(subresources, "checkpoint")
	default:
		subresources = append(subresources, "proxy")
	}
	return verb, subresources
}

// isSubpath reports whether path is prefix or below it.
func isSubpath(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

type userKey struct{}

// UserFrom returns the authenticated user of a request that passed the auth filter.
func UserFrom(ctx context.Context) (*User, bool) {
	u, ok := ctx.Value(userKey{}).(*User)
	return u, ok
}

// withAuth authenticates (401 without a user) and authorizes (403 when denied, 500 when
// the review failed) every request before next sees it.
func (s *Server) withAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger := klog.FromContext(r.Context())
		u, err := s.authn.authenticate(r)
		if err != nil {
			logger.Error(err, "Unable to authenticate the request", "path", r.URL.Path)
		}
		if u == nil {
			httpError(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		verb, subs := requestAttributes(r.Method, r.URL.Path)
		var allowed bool
		var authzErr error
		for _, sub := range subs {
			ok, err := s.authz.authorize(r.Context(), u, s.cfg.NodeName, verb, sub)
			if err != nil {
				authzErr = err
				continue
			}
			if ok {
				allowed = true
				break
			}
		}
		if !allowed && authzErr != nil {
			logger.Error(authzErr, "Authorization error", "user", u.Name, "verb", verb, "subresources", subs)
			httpError(w, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=nodes, subresource(s)=%v)", u.Name, verb, subs), http.StatusInternalServerError)
			return
		}
		if !allowed {
			logger.V(2).Info("Forbidden", "user", u.Name, "verb", verb, "subresources", subs)
			httpError(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=nodes, subresource(s)=%v)", u.Name, verb, subs), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)))
	})
}
