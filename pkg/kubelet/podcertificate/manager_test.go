package podcertificate

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	testclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

const (
	testNS      = "ns1"
	testNode    = "node1"
	testNodeUID = types.UID("node1-uid")
	testSigner  = "foo.com/signer"
	testSA      = "workload"
	testSAUID   = types.UID("sa-uid")
	testVolume  = "certs"
	testIndex   = 1 // the pod's second projected source
)

var notIssued = "credential bundle is not issued yet"

// env is a Manager on a fake API, a fake clock, and a test CA to issue with.
type env struct {
	t        *testing.T
	kc       *fake.Clientset
	clock    *testclock.FakeClock
	recorder *record.FakeRecorder
	m        *Manager
	caKey    crypto.Signer
	caCert   *x509.Certificate
	made     atomic.Int32 // requests created, for generateName
}

type envOption func(*Config)

func withNodeUID(f func() (types.UID, error)) envOption {
	return func(c *Config) { c.NodeUID = f }
}

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	sa := &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testSA, UID: testSAUID}}
	e := &env{
		t:        t,
		kc:       fake.NewClientset(sa),
		clock:    testclock.NewFakeClock(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)),
		recorder: record.NewFakeRecorder(100),
	}
	// The fake API neither generates names nor stamps creation times.
	e.kc.PrependReactor("create", "podcertificaterequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pcr := a.(k8stesting.CreateAction).GetObject().(*certificatesv1.PodCertificateRequest)
		if pcr.Name == "" {
			pcr.Name = fmt.Sprintf("%s%d", pcr.GenerateName, e.made.Add(1))
		}
		pcr.CreationTimestamp = metav1.NewTime(e.clock.Now())
		return false, nil, nil
	})
	cfg := Config{
		Client:   e.kc,
		NodeName: testNode,
		NodeUID:  func() (types.UID, error) { return testNodeUID, nil },
		Recorder: e.recorder,
		Clock:    e.clock,
	}
	for _, o := range opts {
		o(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	e.newCA()
	return e
}

// run starts the manager's Run, and checks it returns once its context ends.
func (e *env) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		e.m.Run(ctx)
		close(done)
	}()
	e.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			e.t.Error("Run did not return after its context ended")
		}
	})
}

func (e *env) newCA() {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		NotBefore:             e.clock.Now().Add(-time.Hour),
		NotAfter:              e.clock.Now().Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	e.caKey = key
	if e.caCert, err = x509.ParseCertificate(der); err != nil {
		e.t.Fatal(err)
	}
}

func testPod(uid types.UID, keyType string) (*v1.Pod, *v1.PodCertificateProjection) {
	src := &v1.PodCertificateProjection{
		SignerName:           testSigner,
		KeyType:              keyType,
		CredentialBundlePath: "creds.pem",
		MaxExpirationSeconds: ptr.To[int32](3600),
		UserAnnotations:      map[string]string{"test.domain/foo": "bar"},
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "workload-" + string(uid), UID: uid},
		Spec: v1.PodSpec{
			ServiceAccountName: testSA,
			NodeName:           testNode,
			Volumes: []v1.Volume{{Name: testVolume, VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{
				Sources: []v1.VolumeProjection{
					{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "token"}},
					{PodCertificate: src},
				},
			}}}},
		},
	}
	return pod, src
}

func (e *env) creds(pod *v1.Pod, src *v1.PodCertificateProjection) ([]byte, []byte, error) {
	return e.m.Credentials(e.t.Context(), pod, testVolume, testIndex, src)
}

// requests lists the PodCertificateRequests made, oldest first.
func (e *env) requests() []certificatesv1.PodCertificateRequest {
	e.t.Helper()
	list, err := e.kc.CertificatesV1().PodCertificateRequests(testNS).List(e.t.Context(), metav1.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	slices.SortFunc(list.Items, func(a, b certificatesv1.PodCertificateRequest) int {
		if len(a.Name) != len(b.Name) { // req-9 before req-10
			return len(a.Name) - len(b.Name)
		}
		return strings.Compare(a.Name, b.Name)
	})
	return list.Items
}

func (e *env) wantRequests(n int) []certificatesv1.PodCertificateRequest {
	e.t.Helper()
	got := e.requests()
	if len(got) != n {
		e.t.Fatalf("%d PodCertificateRequests exist, want %d", len(got), n)
	}
	return got
}

// issue signs pcr's key with the test CA, as a signer would, with some text and PEM
// headers the manager must clean away. It returns the chain the pod should get.
func (e *env) issue(pcr certificatesv1.PodCertificateRequest) string {
	e.t.Helper()
	csr := verifyProof(e.t, pcr.Spec.StubPKCS10Request)
	now := e.clock.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(e.made.Load()) + 100), NotBefore: now, NotAfter: now.Add(24 * time.Hour)}
	leaf, err := x509.CreateCertificate(rand.Reader, tmpl, e.caCert, csr.PublicKey, e.caKey)
	if err != nil {
		e.t.Fatal(err)
	}
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf})
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.caCert.Raw})
	raw := "issued by the test CA\n" +
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Headers: map[string]string{"Comment": "leaf"}, Bytes: leaf})) +
		"-- between --\n" + string(caPEM)
	e.setStatus(pcr, certificatesv1.PodCertificateRequestStatus{
		Conditions:       []metav1.Condition{condition(certificatesv1.PodCertificateRequestConditionTypeIssued, "Issued", "ok", now)},
		CertificateChain: raw,
		NotBefore:        ptr.To(metav1.NewTime(now)),
		BeginRefreshAt:   ptr.To(metav1.NewTime(now.Add(23 * time.Hour))),
		NotAfter:         ptr.To(metav1.NewTime(now.Add(24 * time.Hour))),
	})
	return string(leafPEM) + string(caPEM)
}

func (e *env) decide(pcr certificatesv1.PodCertificateRequest, condType, reason, message string) {
	e.t.Helper()
	e.setStatus(pcr, certificatesv1.PodCertificateRequestStatus{
		Conditions: []metav1.Condition{condition(condType, reason, message, e.clock.Now())},
	})
}

func (e *env) setStatus(pcr certificatesv1.PodCertificateRequest, st certificatesv1.PodCertificateRequestStatus) {
	e.t.Helper()
	pcr.Status = st
	if _, err := e.kc.CertificatesV1().PodCertificateRequests(testNS).UpdateStatus(e.t.Context(), &pcr, metav1.UpdateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func condition(typ, reason, message string, at time.Time) metav1.Condition {
	return metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: reason, Message: message, LastTransitionTime: metav1.NewTime(at)}
}

// eventually polls f (in real time: the informer runs on it) until it returns nil.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// credsFrom polls Credentials until it returns the chain wanted.
func (e *env) credsFrom(pod *v1.Pod, src *v1.PodCertificateProjection, wantChain string) []byte {
	e.t.Helper()
	var key []byte
	eventually(e.t, func() error {
		k, chain, err := e.creds(pod, src)
		if err != nil {
			return err
		}
		if string(chain) != wantChain {
			return fmt.Errorf("chain not the one wanted yet:\n%s", chain)
		}
		key = k
		return nil
	})
	return key
}

// wantKeyFor checks keyPEM is the key pcr was made for.
func wantKeyFor(t *testing.T, keyPEM []byte, pcr certificatesv1.PodCertificateRequest) {
	t.Helper()
	csr := verifyProof(t, pcr.Spec.StubPKCS10Request)
	pub := parseKeyPEM(t, keyPEM).Public().(interface{ Equal(crypto.PublicKey) bool })
	if !pub.Equal(csr.PublicKey) {
		t.Errorf("key returned is not the one requested in %s", pcr.Name)
	}
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got error %v, want one containing %q", err, want)
	}
}

func (e *env) wantEvents(want ...string) {
	e.t.Helper()
	var got []string
	for len(e.recorder.Events) > 0 {
		got = append(got, <-e.recorder.Events)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		e.t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestNew(t *testing.T) {
	full := func() Config {
		return Config{
			Client:   fake.NewClientset(),
			NodeName: testNode,
			NodeUID:  func() (types.UID, error) { return testNodeUID, nil },
			Recorder: record.NewFakeRecorder(1),
		}
	}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{name: "complete", edit: func(*Config) {}},
		{name: "no client", edit: func(c *Config) { c.Client = nil }, wantErr: "missing [Client]"},
		{name: "no node name", edit: func(c *Config) { c.NodeName = "" }, wantErr: "missing [NodeName]"},
		{name: "no node UID", edit: func(c *Config) { c.NodeUID = nil }, wantErr: "missing [NodeUID]"},
		{name: "no recorder", edit: func(c *Config) { c.Recorder = nil }, wantErr: "missing [Recorder]"},
		{name: "nothing", edit: func(c *Config) { *c = Config{} }, wantErr: "missing [Client NodeName NodeUID Recorder]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := full()
			tc.edit(&cfg)
			m, err := New(cfg)
			if tc.wantErr != "" {
				wantErr(t, err, tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.clock == nil {
				t.Error("no default clock")
			}
		})
	}
}

func TestFirstCallCreatesOneRequest(t *testing.T) {
	e := newEnv(t)
	pod, src := testPod("pod-uid-1", "ED25519")

	_, _, err := e.creds(pod, src)
	if err == nil || err.Error() != notIssued {
		t.Fatalf("first call: got error %v, want %q", err, notIssued)
	}
	got := e.wantRequests(1)[0]
	verifyProof(t, got.Spec.StubPKCS10Request)

	want := certificatesv1.PodCertificateRequest{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    testNS,
			GenerateName: "req-",
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID,
			}},
		},
		Spec: certificatesv1.PodCertificateRequestSpec{
			SignerName:                testSigner,
			PodName:                   pod.Name,
			PodUID:                    pod.UID,
			ServiceAccountName:        testSA,
			ServiceAccountUID:         testSAUID,
			NodeName:                  testNode,
			NodeUID:                   testNodeUID,
			MaxExpirationSeconds:      ptr.To[int32](3600),
			UnverifiedUserAnnotations: map[string]string{"test.domain/foo": "bar"},
		},
	}
	gotClone := got.DeepCopy()
	gotClone.TypeMeta = metav1.TypeMeta{}
	gotClone.Name, gotClone.ResourceVersion, gotClone.CreationTimestamp, gotClone.ManagedFields = "", "", metav1.Time{}, nil
	gotClone.Spec.StubPKCS10Request = nil
	if diff := cmp.Diff(want, *gotClone); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}

	// Until the signer decides, calls only wait.
	for range 3 {
		if _, _, err := e.creds(pod, src); err == nil || err.Error() != notIssued {
			t.Fatalf("later call: got error %v, want %q", err, notIssued)
		}
	}
	e.wantRequests(1)
	e.wantEvents()
}

func TestConcurrentFirstCallsCreateOneRequest(t *testing.T) {
	e := newEnv(t)
	pod, src := testPod("pod-uid-1", "ECDSAP256")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, _, err := e.creds(pod, src); err == nil || err.Error() != notIssued {
				t.Errorf("got error %v, want %q", err, notIssued)
			}
		})
	}
	wg.Wait()
	e.wantRequests(1)
}

func TestMaxExpirationSecondsCopiedAsIs(t *testing.T) {
	e := newEnv(t)
	pod, src := testPod("pod-uid-1", "ED25519")
	src.MaxExpirationSeconds = nil // the API server defaults it, not the kubelet
	_, _, _ = e.creds(pod, src)
	if got := e.wantRequests(1)[0].Spec.MaxExpirationSeconds; got != nil {
		t.Errorf("maxExpirationSeconds = %d, want unset", *got)
	}
}

func TestSignerDecision(t *testing.T) {
	tests := []struct {
		name       string
		decide     func(e *env, pcr certificatesv1.PodCertificateRequest) (chain string)
		wantErr    string
		wantEvents []string
	}{
		{
			name:   "issued",
			decide: func(e *env, pcr certificatesv1.PodCertificateRequest) string { return e.issue(pcr) },
		},
		{
			name: "denied",
			decide: func(e *env, pcr certificatesv1.PodCertificateRequest) string {
				e.decide(pcr, certificatesv1.PodCertificateRequestConditionTypeDenied, "UnsupportedKeyType", "use ECDSAP256")
				return ""
			},
			wantErr:    `PodCertificateRequest was permanently denied: reason="UnsupportedKeyType" message="use ECDSAP256"`,
			wantEvents: []string{`Warning Denied PodCertificateRequest ns1/req-1 was denied, reason="UnsupportedKeyType", message="use ECDSAP256"`},
		},
		{
			name: "failed",
			decide: func(e *env, pcr certificatesv1.PodCertificateRequest) string {
				e.decide(pcr, certificatesv1.PodCertificateRequestConditionTypeFailed, "SignerDown", "try later")
				return ""
			},
			wantErr:    `PodCertificateRequest was permanently failed: reason="SignerDown" message="try later"`,
			wantEvents: []string{`Warning Failed PodCertificateRequest ns1/req-1 failed, reason="SignerDown", message="try later"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.run()
			pod, src := testPod("pod-uid-1", "ECDSAP384")
			if _, _, err := e.creds(pod, src); err == nil || err.Error() != notIssued {
				t.Fatalf("first call: got error %v, want %q", err, notIssued)
			}
			pcr := e.wantRequests(1)[0]
			chain := tc.decide(e, pcr)

			if tc.wantErr == "" {
				wantKeyFor(t, e.credsFrom(pod, src, chain), pcr)
			} else {
				eventually(t, func() error {
					_, _, err := e.creds(pod, src)
					if err != nil && err.Error() == notIssued {
						return err
					}
					return nil
				})
				_, _, err := e.creds(pod, src)
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("got error %v, want %q", err, tc.wantErr)
				}
				// Final: a day later, still the same error and no new request.
				e.clock.Step(24 * time.Hour)
				_, _, err = e.creds(pod, src)
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("a day later: got error %v, want %q", err, tc.wantErr)
				}
			}
			e.wantRequests(1)
			e.wantEvents(tc.wantEvents...)
		})
	}
}

func TestUndecidedStatusKeepsWaiting(t *testing.T) {
	e := newEnv(t)
	e.run()
	pod, src := testPod("pod-uid-1", "ED25519")
	_, _, _ = e.creds(pod, src)
	pcr := e.wantRequests(1)[0]
	e.decide(pcr, "SomethingElse", "Thinking", "")
	eventually(t, func() error { // the informer has seen the update
		got, err := e.m.lister.PodCertificateRequests(testNS).Get(pcr.Name)
		if err != nil || len(got.Status.Conditions) == 0 {
			return fmt.Errorf("update not seen yet (%v)", err)
		}
		return nil
	})
	if _, _, err := e.creds(pod, src); err == nil || err.Error() != notIssued {
		t.Fatalf("got error %v, want %q", err, notIssued)
	}
}

func TestRefresh(t *testing.T) {
	e := newEnv(t)
	e.run()
	pod, src := testPod("pod-uid-1", "ED25519")
	_, _, _ = e.creds(pod, src)
	first := e.wantRequests(1)[0]
	chain1 := e.issue(first)
	key1 := e.credsFrom(pod, src, chain1)
	wantKeyFor(t, key1, first)

	// Just before beginRefreshAt (23h after issue): nothing new.
	e.clock.Step(23*time.Hour - time.Second)
	wantServed(t, e, pod, src, key1, chain1)
	e.wantRequests(1)

	// Past it, jitter included: a new key and request; the old credentials meanwhile.
	e.clock.Step(time.Second + maxJitter)
	wantServed(t, e, pod, src, key1, chain1)
	second := e.wantRequests(2)[1]
	if slices.Equal(second.Spec.StubPKCS10Request, first.Spec.StubPKCS10Request) {
		t.Fatal("refresh request reuses the old key")
	}
	wantServed(t, e, pod, src, key1, chain1)
	e.wantRequests(2)

	chain2 := e.issue(second)
	key2 := e.credsFrom(pod, src, chain2)
	wantKeyFor(t, key2, second)
	e.wantEvents() // refreshed in time: no warnings
}

func wantServed(t *testing.T, e *env, pod *v1.Pod, src *v1.PodCertificateProjection, wantKey []byte, wantChain string) {
	t.Helper()
	key, chain, err := e.creds(pod, src)
	if err != nil {
		t.Fatal(err)
	}
	if string(key) != string(wantKey) || string(chain) != wantChain {
		t.Fatal("credentials served are not the ones wanted")
	}
}

func TestRefreshStartedByRun(t *testing.T) {
	e := newEnv(t)
	e.run()
	pod, src := testPod("pod-uid-1", "ED25519")
	_, _, _ = e.creds(pod, src)
	e.issue(e.wantRequests(1)[0])
	k := projectionKey{podUID: pod.UID, volume: testVolume, index: testIndex}
	eventually(t, func() error { return wantState[*stateFresh](e.m, k) }) // noticed by Run alone

	eventually(t, func() error { // the refresh pass has its timer set
		if !e.clock.HasWaiters() {
			return errors.New("no refresh timer yet")
		}
		return nil
	})
	e.clock.Step(24 * time.Hour)
	eventually(t, func() error {
		if n := len(e.requests()); n != 2 {
			return fmt.Errorf("%d requests", n)
		}
		return wantState[*stateWaitingForRefresh](e.m, k)
	})
}

func wantState[S projectionState](m *Manager, k projectionKey) error {
	rec := m.lookup(k)
	if rec == nil {
		return errors.New("no record")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if _, ok := rec.state.(S); !ok {
		return fmt.Errorf("state is %v", rec.state)
	}
	return nil
}

func TestLateRefreshWarnsOnce(t *testing.T) {
	e := newEnv(t)
	e.run()
	pod, src := testPod("pod-uid-1", "ED25519")
	_, _, _ = e.creds(pod, src)
	chain := e.issue(e.wantRequests(1)[0])
	key := e.credsFrom(pod, src, chain)

	// Asleep past expiry: upstream still serves the old credentials, and warns.
	e.clock.Step(25 * time.Hour)
	wantServed(t, e, pod, src, key, chain)
	wantServed(t, e, pod, src, key, chain)
	e.wantRequests(2)
	e.wantEvents(
		"Warning CertificateOverdueForRefresh PodCertificate refresh overdue",
		"Warning CertificateExpired PodCertificate expired",
	)
}

func TestRefreshDenied(t *testing.T) {
	e := newEnv(t)
	e.run()
	pod, src := testPod("pod-uid-1", "ED25519")
	_, _, _ = e.creds(pod, src)
	chain := e.issue(e.wantRequests(1)[0])
	e.credsFrom(pod, src, chain)
	e.clock.Step(24 * time.Hour)
	_, _, _ = e.creds(pod, src)
	e.decide(e.wantRequests(2)[1], certificatesv1.PodCertificateRequestConditionTypeDenied, "Policy", "no more")

	// As upstream: a denied refresh ends the old credentials too.
	want := `PodCertificateRequest was permanently denied: reason="Policy" message="no more"`
	eventually(t, func() error {
		_, _, err := e.creds(pod, src)
		if err == nil || err.Error() != want {
			return fmt.Errorf("got error %v", err)
		}
		return nil
	})
}

func TestRequestDeletedWhileWaiting(t *testing.T) {
	e := newEnv(t) // no Run: the informer never sees the request
	pod, src := testPod("pod-uid-1", "ED25519")
	_, _, _ = e.creds(pod, src)

	e.clock.Step(assumeDeletedThreshold - time.Second)
	if _, _, err := e.creds(pod, src); err == nil || err.Error() != notIssued {
		t.Fatalf("before the threshold: got error %v, want %q", err, notIssued)
	}
	e.clock.Step(maxJitter + 2*time.Second)
	_, _, err := e.creds(pod, src)
	wantErr(t, err, `PodCertificateRequest "ns1/req-1" appears to have been deleted`)
	e.wantRequests(1)

	if _, _, err := e.creds(pod, src); err == nil || err.Error() != notIssued {
		t.Fatalf("after: got error %v, want %q", err, notIssued)
	}
	e.wantRequests(2)
}

func TestRefreshRequestDeleted(t *testing.T) {
	e := newEnv(t)
	e.run()
	pod, src := testPod("pod-uid-1", "ED25519")
	_, _, _ = e.creds(pod, src)
	chain := e.issue(e.wantRequests(1)[0])
	key := e.credsFrom(pod, src, chain)
	e.clock.Step(24 * time.Hour)
	wantServed(t, e, pod, src, key, chain)
	gone := e.wantRequests(2)[1].Name
	inCache := func() error {
		_, err := e.m.lister.PodCertificateRequests(testNS).Get(gone)
		return err
	}
	eventually(t, inCache) // else the informer could see it only after the deletion check
	if err := e.kc.CertificatesV1().PodCertificateRequests(testNS).Delete(t.Context(), gone, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() error {
		if err := inCache(); !apierrors.IsNotFound(err) {
			return fmt.Errorf("deletion not seen yet (%v)", err)
		}
		return nil
	})

	// Once it counts as deleted, the old credentials are still served, and another
	// request is made.
	e.clock.Step(assumeDeletedThreshold + maxJitter + time.Second)
	wantServed(t, e, pod, src, key, chain)
	wantServed(t, e, pod, src, key, chain)
	if n := len(e.requests()); n != 2 { // req-1 and the new one
		t.Fatalf("%d requests, want 2", n)
	}
	if got := e.requests()[1].Name; got == gone {
		t.Fatalf("no new request after %s was deleted", gone)
	}
}

func TestForget(t *testing.T) {
	e := newEnv(t)
	podA, srcA := testPod("pod-a", "ED25519")
	podB, srcB := testPod("pod-b", "ED25519")
	_, _, _ = e.creds(podA, srcA)
	_, _, _ = e.creds(podB, srcB)
	e.wantRequests(2)

	e.m.Forget(podA.UID)
	e.m.Forget("unknown")
	if got := e.m.keys(podA.UID); len(got) != 0 {
		t.Errorf("pod A still has %v", got)
	}
	if got := e.m.keys(podB.UID); len(got) != 1 {
		t.Errorf("pod B has %v, want its one projection", got)
	}

	// A forgotten pod starts over; the other one is untouched.
	_, _, _ = e.creds(podA, srcA)
	_, _, _ = e.creds(podB, srcB)
	e.wantRequests(3)
}

func TestBadInput(t *testing.T) {
	goodPod, goodSrc := testPod("pod-uid-1", "ED25519")
	noUID := goodPod.DeepCopy()
	noUID.UID = ""
	otherSA := goodPod.DeepCopy()
	otherSA.Spec.ServiceAccountName = "missing"
	tests := []struct {
		name    string
		opts    []envOption
		pod     *v1.Pod
		src     *v1.PodCertificateProjection
		index   int
		wantErr string
	}{
		{name: "no pod", src: goodSrc, wantErr: "pod certificate: no pod given"},
		{name: "pod without UID", pod: noUID, src: goodSrc, wantErr: "pod certificate: pod ns1/workload-pod-uid-1 has no UID"},
		{name: "no source", pod: goodPod, wantErr: "pod certificate: no podCertificate source given"},
		{name: "negative index", pod: goodPod, src: goodSrc, index: -1, wantErr: "pod certificate: invalid source index -1"},
		{
			name: "unknown key type", pod: goodPod, src: &v1.PodCertificateProjection{SignerName: testSigner, KeyType: "RSA1024"},
			wantErr: `while creating initial PodCertificateRequest: while generating keypair: unknown key type "RSA1024"`,
		},
		{
			name: "node UID not known", pod: goodPod, src: goodSrc,
			opts:    []envOption{withNodeUID(func() (types.UID, error) { return "", errors.New("node not registered yet") })},
			wantErr: "while creating initial PodCertificateRequest: while getting node UID: node not registered yet",
		},
		{
			name: "node UID empty", pod: goodPod, src: goodSrc,
			opts:    []envOption{withNodeUID(func() (types.UID, error) { return "", nil })},
			wantErr: "while creating initial PodCertificateRequest: while getting node UID: not known yet",
		},
		{
			name: "service account missing", pod: otherSA, src: goodSrc,
			wantErr: `while creating initial PodCertificateRequest: while fetching service account: serviceaccounts "missing" not found`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			key, chain, err := e.m.Credentials(t.Context(), tc.pod, testVolume, tc.index, tc.src)
			if err == nil || err.Error() != tc.wantErr {
				t.Fatalf("got error %v, want %q", err, tc.wantErr)
			}
			if key != nil || chain != nil {
				t.Error("credentials returned with an error")
			}
			e.wantRequests(0)
		})
	}
}

func TestNodeUIDLaterKnown(t *testing.T) {
	var known atomic.Bool
	e := newEnv(t, withNodeUID(func() (types.UID, error) {
		if !known.Load() {
			return "", errors.New("not registered")
		}
		return testNodeUID, nil
	}))
	pod, src := testPod("pod-uid-1", "ED25519")
	_, _, err := e.creds(pod, src)
	wantErr(t, err, "while getting node UID: not registered")
	known.Store(true)
	if _, _, err := e.creds(pod, src); err == nil || err.Error() != notIssued {
		t.Fatalf("got error %v, want %q", err, notIssued)
	}
	if got := e.wantRequests(1)[0].Spec.NodeUID; got != testNodeUID {
		t.Errorf("nodeUID %q, want %q", got, testNodeUID)
	}
}

func TestWatchesOnlyThisNode(t *testing.T) {
	e := newEnv(t)
	e.run()
	// The informer starts with the first request for credentials.
	pod, src := testPod("pod-uid-1", "ED25519")
	if _, _, err := e.creds(pod, src); err == nil || err.Error() != notIssued {
		t.Fatalf("got error %v, want %q", err, notIssued)
	}
	want := "spec.nodeName=" + testNode
	eventually(t, func() error {
		var list, watch int
		for _, a := range e.kc.Actions() {
			if a.GetResource().Resource != "podcertificaterequests" {
				continue
			}
			var sel string
			switch a := a.(type) {
			case k8stesting.ListActionImpl:
				list++
				sel = a.GetListRestrictions().Fields.String()
			case k8stesting.WatchActionImpl:
				watch++
				sel = a.GetWatchRestrictions().Fields.String()
			default:
				continue
			}
			if sel != want {
				t.Fatalf("%s with field selector %q, want %q", a.GetVerb(), sel, want)
			}
		}
		if list == 0 || watch == 0 {
			return fmt.Errorf("%d lists, %d watches", list, watch)
		}
		return nil
	})
}
