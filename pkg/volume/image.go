package volume

// imageVolume is an image volume (volumes[].image): as upstream's kubernetes.io/image
// plugin, nothing is set up on the host; the runtime mounts the image, always read-only.
func imageVolume() Mount { return Mount{Image: true, ReadOnly: true} }

// CheckSubPath checks a subPath that is not resolved on the host (an image volume's):
// relative and free of ".." elements, as for host volumes.
func CheckSubPath(sub string) error { return validSubPath(sub) }
