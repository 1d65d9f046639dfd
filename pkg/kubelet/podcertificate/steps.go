package podcertificate

import (
	"context"
	"errors"
	"fmt"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// errRequestGone: the request we wait on seems to have been deleted.
var errRequestGone = errors.New("appears to have been deleted")

// step advances rec by at most one transition. rec.mu must be held. Denied and failed
// are final; the other states move on when the signer decides or time passes.
func (m *Manager) step(ctx context.Context, k projectionKey, rec *projection) error {
	if rec.pod == nil { // made by Credentials, which has not filled it in yet
		return nil
	}
	switch s := rec.state.(type) {
	case *stateInitial:
		p, err := m.createRequest(ctx, rec.pod, rec.src)
		if err != nil {
			return fmt.Errorf("while creating initial PodCertificateRequest: %w", err)
		}
		m.enter(ctx, k, rec, &stateWaiting{pending: p}, p.name)
	case *stateWaiting:
		return m.stepWaiting(ctx, k, rec, s)
	case *stateFresh:
		return m.stepFresh(ctx, k, rec, s)
	case *stateWaitingForRefresh:
		return m.stepWaitingForRefresh(ctx, k, rec, s)
	}
	return nil
}

func (m *Manager) stepWaiting(ctx context.Context, k projectionKey, rec *projection, s *stateWaiting) error {
	next, err := m.outcome(rec.pod.Namespace, s.pending)
	if errors.Is(err, errRequestGone) {
		m.enter(ctx, k, rec, &stateInitial{}, s.pending.name) // make a new one
		return err
	}
	if err != nil || next == nil {
		return err
	}
	m.enter(ctx, k, rec, next, s.pending.name)
	return nil
}

func (m *Manager) stepFresh(ctx context.Context, k projectionKey, rec *projection, s *stateFresh) error {
	if m.clock.Now().Before(s.issued.beginRefreshAt) {
		return nil
	}
	m.warnIfLate(ctx, rec.pod, &s.issued)
	p, err := m.createRequest(ctx, rec.pod, rec.src)
	if err != nil {
		return fmt.Errorf("while creating refresh PodCertificateRequest: %w", err)
	}
	m.enter(ctx, k, rec, &stateWaitingForRefresh{issued: s.issued, pending: p}, p.name)
	return nil
}

func (m *Manager) stepWaitingForRefresh(ctx context.Context, k projectionKey, rec *projection, s *stateWaitingForRefresh) error {
	next, err := m.outcome(rec.pod.Namespace, s.pending)
	if errors.Is(err, errRequestGone) {
		// Back to the credentials we have; the next step makes a new request.
		m.enter(ctx, k, rec, &stateFresh{issued: s.issued}, s.pending.name)
		return err
	}
	if err != nil {
		return err
	}
	if next != nil {
		// As upstream, a denied or failed refresh ends the old credentials too.
		m.enter(ctx, k, rec, next, s.pending.name)
		return nil
	}
	m.warnIfLate(ctx, rec.pod, &s.issued)
	return nil
}

// outcome looks a pending request up in the informer cache: the state it has led to,
// nil while the signer has not decided, or errRequestGone.
func (m *Manager) outcome(namespace string, p pendingRequest) (projectionState, error) {
	pcr, err := m.lister.PodCertificateRequests(namespace).Get(p.name)
	if apierrors.IsNotFound(err) {
		// Either the informer lags behind our create, or someone deleted it; only
		// time tells them apart.
		if m.clock.Now().After(p.abandonAt) {
			return nil, fmt.Errorf("PodCertificateRequest %q %w", namespace+"/"+p.name, errRequestGone)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("while getting PodCertificateRequest %q: %w", namespace+"/"+p.name, err)
	}
	for _, c := range pcr.Status.Conditions {
		switch c.Type {
		case certificatesv1.PodCertificateRequestConditionTypeDenied:
			return &stateDenied{reason: c.Reason, message: c.Message}, nil
		case certificatesv1.PodCertificateRequestConditionTypeFailed:
			return &stateFailed{reason: c.Reason, message: c.Message}, nil
		case certificatesv1.PodCertificateRequestConditionTypeIssued:
			return &stateFresh{issued: m.issued(p.key, &pcr.Status)}, nil
		}
	}
	return nil, nil
}

// issued takes the credentials out of an issued request's status. The refresh time
// gets up to five minutes of jitter, as upstream's.
func (m *Manager) issued(key []byte, st *certificatesv1.PodCertificateRequestStatus) issuedCredentials {
	c := issuedCredentials{key: key, chain: cleanCertificateChain([]byte(st.CertificateChain))}
	if st.NotAfter != nil {
		c.notAfter = st.NotAfter.Time
	}
	// The API server requires beginRefreshAt with the chain; without it (a fake API),
	// refresh no later than expiry.
	switch {
	case st.BeginRefreshAt != nil:
		c.beginRefreshAt = st.BeginRefreshAt.Time.Add(m.jitter())
	case st.NotAfter != nil:
		c.beginRefreshAt = c.notAfter
	default:
		c.beginRefreshAt = m.clock.Now()
	}
	return c
}

// enter moves rec to next, with the log line and (denied, failed) pod event upstream
// gives the transition.
func (m *Manager) enter(ctx context.Context, k projectionKey, rec *projection, next projectionState, pcrName string) {
	klog.FromContext(ctx).V(4).Info("Pod certificate projection changed state", "pod", klog.KObj(rec.pod),
		"volume", k.volume, "sourceIndex", k.index, "request", pcrName, "from", rec.state, "to", next)
	rec.state = next
	ref := rec.pod.Namespace + "/" + pcrName
	switch s := next.(type) {
	case *stateDenied:
		m.recorder.Eventf(rec.pod, v1.EventTypeWarning, certificatesv1.PodCertificateRequestConditionTypeDenied,
			"PodCertificateRequest %s was denied, reason=%q, message=%q", ref, s.reason, s.message)
	case *stateFailed:
		m.recorder.Eventf(rec.pod, v1.EventTypeWarning, certificatesv1.PodCertificateRequestConditionTypeFailed,
			"PodCertificateRequest %s failed, reason=%q, message=%q", ref, s.reason, s.message)
	}
}

// warnIfLate emits, once per certificate, upstream's warnings that a refresh is overdue
// and that the certificate has expired.
func (m *Manager) warnIfLate(ctx context.Context, pod *v1.Pod, c *issuedCredentials) {
	now := m.clock.Now()
	logger := klog.FromContext(ctx)
	if now.After(c.beginRefreshAt.Add(refreshOverdueDuration)) && !c.overdueEventSent {
		logger.V(4).Info("Pod certificate refresh overdue", "pod", klog.KObj(pod))
		m.recorder.Eventf(pod, v1.EventTypeWarning, "CertificateOverdueForRefresh", "PodCertificate refresh overdue")
		c.overdueEventSent = true
	}
	if now.After(c.notAfter) && !c.expiredEventSent {
		logger.V(4).Info("Pod certificate expired", "pod", klog.KObj(pod))
		m.recorder.Eventf(pod, v1.EventTypeWarning, "CertificateExpired", "PodCertificate expired")
		c.expiredEventSent = true
	}
}

// createRequest makes a key and a PodCertificateRequest for it, as upstream's: the
// service account's UID is read from the API, the node's from NodeUID.
func (m *Manager) createRequest(ctx context.Context, pod *v1.Pod, src *v1.PodCertificateProjection) (pendingRequest, error) {
	sa, err := m.client.CoreV1().ServiceAccounts(pod.Namespace).Get(ctx, pod.Spec.ServiceAccountName, metav1.GetOptions{})
	if err != nil {
		return pendingRequest{}, fmt.Errorf("while fetching service account: %w", err)
	}
	nodeUID, err := m.nodeUID()
	if err == nil && nodeUID == "" {
		err = errors.New("not known yet")
	}
	if err != nil {
		return pendingRequest{}, fmt.Errorf("while getting node UID: %w", err)
	}
	priv, csr, err := generateKeyAndProof(src.KeyType)
	if err != nil {
		return pendingRequest{}, fmt.Errorf("while generating keypair: %w", err)
	}
	keyPEM, err := pemEncodeKey(priv)
	if err != nil {
		return pendingRequest{}, fmt.Errorf("while PEM-encoding private key: %w", err)
	}
	req := newRequest(pod, sa.UID, types.NodeName(m.nodeName), nodeUID, src, csr)
	created, err := m.client.CertificatesV1().PodCertificateRequests(pod.Namespace).Create(ctx, req, metav1.CreateOptions{})
	if err != nil {
		return pendingRequest{}, fmt.Errorf("while creating on API: %w", err)
	}
	// Our clock, not the server's creationTimestamp, so that skew cannot make us
	// abandon a request early.
	abandonAt := m.clock.Now().Add(assumeDeletedThreshold + m.jitter())
	return pendingRequest{key: keyPEM, name: created.Name, abandonAt: abandonAt}, nil
}

// newRequest is the PodCertificateRequest upstream's kubelet makes: owned by the pod
// (so it is collected with it), maxExpirationSeconds and user annotations copied as
// they are (the API server defaults the former to 24h).
func newRequest(pod *v1.Pod, saUID types.UID, nodeName types.NodeName, nodeUID types.UID, src *v1.PodCertificateProjection, csr []byte) *certificatesv1.PodCertificateRequest {
	return &certificatesv1.PodCertificateRequest{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    pod.Namespace,
			GenerateName: "req-",
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1",
				Kind:       "Pod",
				Name:       pod.Name,
				UID:        pod.UID,
			}},
		},
		Spec: certificatesv1.PodCertificateRequestSpec{
			SignerName:                src.SignerName,
			PodName:                   pod.Name,
			PodUID:                    pod.UID,
			ServiceAccountName:        pod.Spec.ServiceAccountName,
			ServiceAccountUID:         saUID,
			NodeName:                  nodeName,
			NodeUID:                   nodeUID,
			MaxExpirationSeconds:      src.MaxExpirationSeconds,
			StubPKCS10Request:         csr,
			UnverifiedUserAnnotations: src.UserAnnotations,
		},
	}
}
