package cri

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageRef returns the image's ID if the image is present, or "".
func (c *Client) ImageRef(ctx context.Context, image string) (string, error) {
	img, err := c.ImageStatus(ctx, image)
	if err != nil {
		return "", err
	}
	return img.GetId(), nil
}

// ImageStatus returns what the runtime knows of an image (its ID, size and user); nil
// when the image is not present.
func (c *Client) ImageStatus(ctx context.Context, image string) (*runtimeapi.Image, error) {
	resp, err := call(ctx, c, "image_status", c.images.ImageStatus, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	return resp.GetImage(), err
}

// PullImage pulls image with optional registry credentials; it returns the image ref.
// A failed pull's message is the gRPC error as upstream's CRI client gives it to its
// events and status: "rpc error: code = NotFound desc = ...", the code left out only
// when it is Unknown.
func (c *Client) PullImage(ctx context.Context, image string, auth *runtimeapi.AuthConfig, sbCfg *runtimeapi.PodSandboxConfig) (string, error) {
	var raw error
	keep := func(ctx context.Context, req *runtimeapi.PullImageRequest, opts ...grpc.CallOption) (*runtimeapi.PullImageResponse, error) {
		resp, err := c.images.PullImage(ctx, req, opts...)
		raw = err
		return resp, err
	}
	resp, err := callWithin(ctx, c, "pull_image", 0, keep, &runtimeapi.PullImageRequest{
		Image: &runtimeapi.ImageSpec{Image: image}, Auth: auth, SandboxConfig: sbCfg})
	if err != nil {
		if st, ok := status.FromError(raw); ok && st.Code() != codes.Unknown {
			return "", &pullError{msg: raw.Error(), native: err}
		}
	}
	return resp.GetImageRef(), err
}

// pullError reads as the runtime's gRPC error and unwraps to its errdefs form.
type pullError struct {
	msg    string
	native error
}

func (e *pullError) Error() string { return e.msg }
func (e *pullError) Unwrap() error { return e.native }

// ListImages returns every image the runtime has (ID, tags, digests, size, pinned).
func (c *Client) ListImages(ctx context.Context) ([]*runtimeapi.Image, error) {
	resp, err := call(ctx, c, "list_images", c.images.ListImages, &runtimeapi.ListImagesRequest{})
	return resp.GetImages(), err
}

// RemoveImage removes an image (by ID, tag or digest); one already gone is no error.
func (c *Client) RemoveImage(ctx context.Context, image *runtimeapi.ImageSpec) error {
	_, err := call(ctx, c, "remove_image", c.images.RemoveImage, &runtimeapi.RemoveImageRequest{Image: image})
	return ignoreNotFound(err)
}
