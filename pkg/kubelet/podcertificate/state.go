package podcertificate

import (
	"errors"
	"fmt"
	"time"
)

// Each podCertificate projection moves through these states, as upstream's:
//
//	                          ┌───────────────────────┐
//	                          ▼                       │
//	initial ──► waiting ──► fresh ──► waiting-for-refresh
//	               │                          │
//	               ├──────► denied ◄──────────┤
//	               └──────► failed ◄──────────┘
//
// waiting goes back to initial, and waiting-for-refresh back to fresh, when their
// request seems to have been deleted (see assumeDeletedThreshold).
type projectionState interface {
	// credentials is what Credentials returns in this state.
	credentials() (key, chain []byte, err error)
	// String names the state, for logs.
	String() string
}

// errNotIssued is returned until the signer issues the first certificate.
var errNotIssued = errors.New("credential bundle is not issued yet")

// pendingRequest is a PodCertificateRequest we created and wait on, with its key.
type pendingRequest struct {
	key  []byte // PEM, PKCS#8
	name string
	// If the request is still not in the informer cache at this time, assume someone
	// deleted it and make another.
	abandonAt time.Time
}

// issuedCredentials are the key and chain of an issued request.
type issuedCredentials struct {
	key            []byte // PEM, PKCS#8
	chain          []byte // cleaned PEM chain, leaf first
	beginRefreshAt time.Time
	notAfter       time.Time
	// The overdue and expired warnings are emitted once per certificate.
	overdueEventSent bool
	expiredEventSent bool
}

// stateInitial: no request made yet (or the last one vanished).
type stateInitial struct{}

func (*stateInitial) credentials() ([]byte, []byte, error) { return nil, nil, errNotIssued }
func (*stateInitial) String() string                       { return "initial" }

// stateWaiting: the first request is made, the signer has not decided yet.
type stateWaiting struct{ pending pendingRequest }

func (*stateWaiting) credentials() ([]byte, []byte, error) { return nil, nil, errNotIssued }
func (*stateWaiting) String() string                       { return "waiting" }

// stateDenied is final: the signer will not issue for this pod.
type stateDenied struct{ reason, message string }

func (s *stateDenied) credentials() ([]byte, []byte, error) {
	return nil, nil, fmt.Errorf("PodCertificateRequest was permanently denied: reason=%q message=%q", s.reason, s.message)
}
func (*stateDenied) String() string { return "denied" }

// stateFailed is final: the signer could not issue for this pod.
type stateFailed struct{ reason, message string }

func (s *stateFailed) credentials() ([]byte, []byte, error) {
	return nil, nil, fmt.Errorf("PodCertificateRequest was permanently failed: reason=%q message=%q", s.reason, s.message)
}
func (*stateFailed) String() string { return "failed" }

// stateFresh: credentials issued; nothing to do until beginRefreshAt.
type stateFresh struct{ issued issuedCredentials }

func (s *stateFresh) credentials() ([]byte, []byte, error) { return s.issued.key, s.issued.chain, nil }
func (*stateFresh) String() string                         { return "fresh" }

// stateWaitingForRefresh: a refresh request is made; the old credentials are served
// until the signer decides.
type stateWaitingForRefresh struct {
	issued  issuedCredentials
	pending pendingRequest
}

func (s *stateWaitingForRefresh) credentials() ([]byte, []byte, error) {
	return s.issued.key, s.issued.chain, nil
}
func (*stateWaitingForRefresh) String() string { return "waiting-for-refresh" }
