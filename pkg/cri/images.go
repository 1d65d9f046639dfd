package cri

import (
	"context"

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
func (c *Client) PullImage(ctx context.Context, image string, auth *runtimeapi.AuthConfig, sbCfg *runtimeapi.PodSandboxConfig) (string, error) {
	resp, err := call(ctx, c, "pull_image", c.images.PullImage, &runtimeapi.PullImageRequest{
		Image: &runtimeapi.ImageSpec{Image: image}, Auth: auth, SandboxConfig: sbCfg})
	return resp.GetImageRef(), err
}
