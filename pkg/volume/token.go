package volume

import (
	"context"
	"fmt"
	"sync"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Token rotation, as upstream: a token is renewed once 80% of its lifetime has passed, or
// when it is older than a day, whichever comes first.
const (
	rotateFraction = 0.8
	maxTokenAge    = 24 * time.Hour
	defaultExpiry  = int64(3600)
)

// tokenCache fetches service-account tokens bound to pods through the TokenRequest API.
type tokenCache struct {
	client kubernetes.Interface
	clock  clock.Clock

	mu     sync.Mutex
	tokens map[tokenKey]*authv1.TokenRequest
}

type tokenKey struct {
	uid      types.UID
	sa       string
	audience string
	expiry   int64
}

func newTokenCache(c kubernetes.Interface, clk clock.Clock) *tokenCache {
	return &tokenCache{client: c, clock: clk, tokens: map[tokenKey]*authv1.TokenRequest{}}
}

func (t *tokenCache) get(ctx context.Context, pod *v1.Pod, src *v1.ServiceAccountTokenProjection) (string, error) {
	exp := defaultExpiry
	if src.ExpirationSeconds != nil {
		exp = *src.ExpirationSeconds
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	key := tokenKey{pod.UID, sa, src.Audience, exp}
	t.mu.Lock()
	tr := t.tokens[key]
	t.mu.Unlock()
	if tr != nil && !t.needsRotation(tr) {
		return tr.Status.Token, nil
	}
	req := &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	out, err := t.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		if tr != nil && t.clock.Now().Before(tr.Status.ExpirationTimestamp.Time) {
			return tr.Status.Token, nil // keep serving the old one while it is valid
		}
		return "", fmt.Errorf("failed to fetch token: %w", err)
	}
	// The issue time is ours (the API returns only the expiry); lifetime as requested.
	out.CreationTimestamp = metav1.NewTime(t.clock.Now())
	if out.Spec.ExpirationSeconds == nil {
		out.Spec.ExpirationSeconds = &exp
	}
	t.mu.Lock()
	t.tokens[key] = out
	t.mu.Unlock()
	return out.Status.Token, nil
}

// needsRotation: past 80% of the lifetime asked for (the apiserver may extend the real
// expiry, but the pod was promised a token of the asked-for age), or a day old.
func (t *tokenCache) needsRotation(tr *authv1.TokenRequest) bool {
	issued := tr.CreationTimestamp.Time
	life := time.Duration(*tr.Spec.ExpirationSeconds) * time.Second
	if exp := tr.Status.ExpirationTimestamp.Time; !exp.IsZero() && exp.Sub(issued) < life {
		life = exp.Sub(issued)
	}
	age := t.clock.Since(issued)
	return age > time.Duration(float64(life)*rotateFraction) || age > maxTokenAge
}

func (t *tokenCache) forget(uid types.UID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.tokens {
		if k.uid == uid {
			delete(t.tokens, k)
		}
	}
}
