// Package podcertificate provides the credentials of podCertificate projected volume
// sources, as upstream kubelet's pod certificate manager does: for each source it makes
// a private key and a PodCertificateRequest, waits for the signer to issue (or deny) it,
// and makes a new key and request once the certificate's beginRefreshAt has passed,
// serving the old credentials until the new ones are issued.
package podcertificate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	certlisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Config is what a Manager needs; New rejects missing fields.
type Config struct {
	Client   kubernetes.Interface // creates PodCertificateRequests, watches them
	NodeName string
	// NodeUID returns this node's Node object's UID (the request's spec.nodeUID); an
	// error while it is not known yet.
	NodeUID  func() (types.UID, error)
	Recorder record.EventRecorder // warnings on the pod: Denied, Failed, CertificateOverdueForRefresh, CertificateExpired
	Clock    clock.WithTicker     // default clock.RealClock{}
}

// Manager keeps the credentials of every podCertificate projection it was asked for.
type Manager struct {
	client   kubernetes.Interface
	nodeName string
	nodeUID  func() (types.UID, error)
	recorder record.EventRecorder
	clock    clock.WithTicker
	jitter   func() time.Duration // spreads refreshes and abandon times; a var for tests

	factory informers.SharedInformerFactory
	pcrs    cache.SharedIndexInformer
	lister  certlisters.PodCertificateRequestLister

	mu          sync.Mutex // covers projections (not their contents)
	projections map[projectionKey]*projection

	// wanted closes at the first Credentials call: only then does Run start the informer,
	// so a node whose pods use no pod certificate keeps no watch (nor its memory).
	wanted     chan struct{}
	wantedOnce sync.Once
}

// projectionKey names one podCertificate source of one pod's projected volume.
type projectionKey struct {
	podUID types.UID
	volume string
	index  int
}

// projection is one source's state machine. Its lock is held across API calls, so that
// concurrent callers never make two requests for one source.
type projection struct {
	mu    sync.Mutex
	pod   *v1.Pod // as last passed to Credentials: the events' object, the request's pod
	src   *v1.PodCertificateProjection
	state projectionState
}

// New checks cfg and fills defaults. Credentials works before Run, but sees requests
// issued only once Run's informer is up.
func New(cfg Config) (*Manager, error) {
	var missing []string
	if cfg.Client == nil {
		missing = append(missing, "Client")
	}
	if cfg.NodeName == "" {
		missing = append(missing, "NodeName")
	}
	if cfg.NodeUID == nil {
		missing = append(missing, "NodeUID")
	}
	if cfg.Recorder == nil {
		missing = append(missing, "Recorder")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("pod certificate manager: missing %v", missing)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	// The node authorizer lets a node list and watch only the requests naming it.
	factory := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
		}))
	pcrs := factory.Certificates().V1().PodCertificateRequests()
	return &Manager{
		client:      cfg.Client,
		nodeName:    cfg.NodeName,
		nodeUID:     cfg.NodeUID,
		recorder:    cfg.Recorder,
		clock:       cfg.Clock,
		jitter:      jitterDuration,
		factory:     factory,
		pcrs:        pcrs.Informer(), // registered before the factory starts
		lister:      pcrs.Lister(),
		projections: map[projectionKey]*projection{},
		wanted:      make(chan struct{}),
	}, nil
}

// Credentials returns the PEM private key and PEM certificate chain for projected
// source sourceIndex of volume volumeName of pod. The first call for a source makes its
// key and PodCertificateRequest; until the signer issues it, the error says so and the
// caller should retry. Each call also advances the source's state (noticing issuance,
// starting a refresh), so a caller retrying does not depend on Run's timing.
func (m *Manager) Credentials(ctx context.Context, pod *v1.Pod, volumeName string, sourceIndex int, src *v1.PodCertificateProjection) (key, chain []byte, err error) {
	if err := checkSource(pod, sourceIndex, src); err != nil {
		return nil, nil, err
	}
	m.wantedOnce.Do(func() { close(m.wanted) })
	pk := projectionKey{podUID: pod.UID, volume: volumeName, index: sourceIndex}
	rec := m.projection(pk)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.pod, rec.src = pod, src

	stepErr := m.step(ctx, pk, rec)
	key, chain, err = rec.state.credentials()
	switch {
	case err == nil && stepErr != nil:
		// A refresh that went wrong must not take valid credentials away; the next
		// call or Run's refresh pass retries it.
		klog.FromContext(ctx).V(2).Info("Serving current pod certificate despite a refresh error",
			"pod", klog.KObj(pod), "volume", volumeName, "sourceIndex", sourceIndex, "err", stepErr)
		return key, chain, nil
	case err != nil && stepErr != nil:
		return nil, nil, stepErr // says why no request could be made
	}
	return key, chain, err
}

// Forget drops what is kept for a pod (called when its volumes are torn down). Its
// requests are left to the garbage collector: they are owned by the pod.
func (m *Manager) Forget(podUID types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.projections {
		if k.podUID == podUID {
			delete(m.projections, k)
		}
	}
}

func checkSource(pod *v1.Pod, sourceIndex int, src *v1.PodCertificateProjection) error {
	switch {
	case pod == nil:
		return errors.New("pod certificate: no pod given")
	case pod.UID == "":
		return fmt.Errorf("pod certificate: pod %s has no UID", klog.KObj(pod))
	case src == nil:
		return errors.New("pod certificate: no podCertificate source given")
	case sourceIndex < 0:
		return fmt.Errorf("pod certificate: invalid source index %d", sourceIndex)
	}
	return nil
}

// projection returns the record for k, making an initial one if there is none.
func (m *Manager) projection(k projectionKey) *projection {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec := m.projections[k]
	if rec == nil {
		rec = &projection{state: &stateInitial{}}
		m.projections[k] = rec
	}
	return rec
}

// lookup returns the record for k, or nil once the pod is forgotten.
func (m *Manager) lookup(k projectionKey) *projection {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.projections[k]
}

// keys lists the projections kept, all of them or (podUID set) one pod's.
func (m *Manager) keys(podUID types.UID) []projectionKey {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []projectionKey
	for k := range m.projections {
		if podUID == "" || k.podUID == podUID {
			out = append(out, k)
		}
	}
	return out
}
