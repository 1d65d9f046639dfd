// Package clustertrustbundle serves the trust anchors of ClusterTrustBundles
// (certificates.k8s.io/v1) to projected volumes, as upstream's kubelet does: by name, or
// all bundles of a signer whose labels match a selector, deduplicated, as PEM
// certificates. Its informer starts on the first request, so a node whose pods project
// no bundle never lists them.
package clustertrustbundle

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	certlisters "k8s.io/client-go/listers/certificates/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/minikubelet/minikubelet/pkg/kubelet/informer"
)

// maxLabelSelectorLength is upstream's bound on a selector's string form.
const maxLabelSelectorLength = 100 * 1024

// syncWait is how long a first request waits for the informer's first list, as upstream.
const syncWait = 10 * time.Second

// Manager answers trust-anchor requests from an informer it starts when first asked.
type Manager struct {
	client kubernetes.Interface
	// seed orders the anchors: stable while the kubelet runs, different after a restart,
	// as upstream's shuffle, so that no consumer comes to rely on an order.
	seed uint64

	mu      sync.Mutex
	runCtx  context.Context // set by Run; the informer lives as long as it
	lister  certlisters.ClusterTrustBundleLister
	synced  func() bool
	factory informers.SharedInformerFactory
}

// New returns a manager; Run gives it its lifetime.
func New(client kubernetes.Interface) *Manager {
	return &Manager{client: client, seed: rand.Uint64()}
}

// Run holds the manager's lifetime: an informer started meanwhile stops when ctx ends.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	m.runCtx = ctx
	m.mu.Unlock()
	<-ctx.Done()
	m.mu.Lock()
	f := m.factory
	m.mu.Unlock()
	if f != nil {
		informer.ShutdownWithin(f, time.Second)
	}
}

// bundles returns the lister, starting the informer on first use and waiting (up to
// syncWait) for its first list.
func (m *Manager) bundles(ctx context.Context) (certlisters.ClusterTrustBundleLister, error) {
	m.mu.Lock()
	if m.lister == nil {
		if m.runCtx == nil {
			m.mu.Unlock()
			return nil, errors.New("ClusterTrustBundle manager is not running")
		}
		m.factory = informers.NewSharedInformerFactory(m.client, 0)
		inf := m.factory.Certificates().V1().ClusterTrustBundles()
		m.lister, m.synced = inf.Lister(), inf.Informer().HasSynced
		m.factory.Start(m.runCtx.Done())
	}
	lister, synced := m.lister, m.synced
	m.mu.Unlock()
	if !synced() {
		wait, cancel := context.WithTimeout(ctx, syncWait)
		defer cancel()
		if !cache.WaitForCacheSync(wait.Done(), synced) {
			return nil, errors.New("ClusterTrustBundle informer has not yet synced")
		}
	}
	return lister, nil
}

// ByName returns the anchors of the named bundle; a missing one gives none when
// allowMissing (an optional projection), else an error.
func (m *Manager) ByName(ctx context.Context, name string, allowMissing bool) ([]byte, error) {
	lister, err := m.bundles(ctx)
	if err != nil {
		return nil, err
	}
	ctb, err := lister.Get(name)
	if apierrors.IsNotFound(err) && allowMissing {
		return []byte{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("while getting ClusterTrustBundle: %w", err)
	}
	return m.normalize([]*certificatesv1.ClusterTrustBundle{ctb}), nil
}

// BySigner returns the anchors of every bundle of signerName whose labels match
// selector (nil matches nothing, empty matches all, as upstream); none matching gives
// none when allowMissing, else an error.
func (m *Manager) BySigner(ctx context.Context, signerName string, selector *metav1.LabelSelector, allowMissing bool) ([]byte, error) {
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return nil, fmt.Errorf("while parsing label selector: %w", err)
	}
	if n := len(sel.String()); n > maxLabelSelectorLength {
		return nil, fmt.Errorf("label selector length (%d) is larger than %d", n, maxLabelSelectorLength)
	}
	lister, err := m.bundles(ctx)
	if err != nil {
		return nil, err
	}
	all, err := lister.List(sel)
	if err != nil {
		return nil, fmt.Errorf("while listing ClusterTrustBundles matching label selector %v: %w", selector, err)
	}
	ctbs := slices.DeleteFunc(all, func(c *certificatesv1.ClusterTrustBundle) bool { return c.Spec.SignerName != signerName })
	if len(ctbs) == 0 {
		if allowMissing {
			return []byte{}, nil
		}
		return nil, errors.New("combination of signerName and labelSelector matched zero ClusterTrustBundles")
	}
	return m.normalize(ctbs), nil
}

// normalize is the bundles' PEM blocks, each certificate once, re-encoded as
// CERTIFICATE blocks (headers and text between blocks dropped), in the manager's order.
func (m *Manager) normalize(ctbs []*certificatesv1.ClusterTrustBundle) []byte {
	type anchor struct {
		key uint64
		der []byte
	}
	seen := map[string]bool{}
	var anchors []anchor
	for _, ctb := range ctbs {
		rest := []byte(ctb.Spec.TrustBundle)
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if !seen[string(b.Bytes)] {
				seen[string(b.Bytes)] = true
				anchors = append(anchors, anchor{m.orderKey(b.Bytes), b.Bytes})
			}
		}
	}
	slices.SortFunc(anchors, func(a, b anchor) int {
		if c := cmp.Compare(a.key, b.key); c != 0 {
			return c
		}
		return slices.Compare(a.der, b.der)
	})
	out := []byte{}
	for _, a := range anchors {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.der})...)
	}
	return out
}

func (m *Manager) orderKey(der []byte) uint64 {
	h := fnv.New64a()
	var seed [8]byte
	binary.LittleEndian.PutUint64(seed[:], m.seed)
	h.Write(seed[:])
	h.Write(der)
	return h.Sum64()
}
