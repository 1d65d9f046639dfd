package cri

import (
	"context"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// failingImages answers every PullImage with err.
type failingImages struct {
	runtimeapi.ImageServiceClient
	err error
}

func (f failingImages) PullImage(context.Context, *runtimeapi.PullImageRequest, ...grpc.CallOption) (*runtimeapi.PullImageResponse, error) {
	return nil, f.err
}

// TestPullImageErrorMessage: pull errors read as upstream's CRI client gives them (the
// gRPC code kept unless Unknown) and still unwrap to errdefs kinds.
func TestPullImageErrorMessage(t *testing.T) {
	cases := []struct {
		err      error
		want     string
		notFound bool
	}{
		{status.Error(codes.NotFound, `failed to pull and unpack image "r/a:1": not found`),
			`rpc error: code = NotFound desc = failed to pull and unpack image "r/a:1": not found`, true},
		{status.Error(codes.Unknown, `failed to pull and unpack image "r/a:1": dial tcp: refused`),
			`failed to pull and unpack image "r/a:1": dial tcp: refused`, false},
	}
	for _, tc := range cases {
		c := NewFromServices(nil, failingImages{err: tc.err})
		_, err := c.PullImage(context.Background(), "r/a:1", nil, nil)
		if err == nil || err.Error() != tc.want {
			t.Errorf("error %v, want %q", err, tc.want)
		}
		if errdefs.IsNotFound(err) != tc.notFound {
			t.Errorf("%v: IsNotFound %v, want %v", err, errdefs.IsNotFound(err), tc.notFound)
		}
	}
}
