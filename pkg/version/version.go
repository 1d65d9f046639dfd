// Package version holds the build's version, stamped by the Makefile with -ldflags -X.
package version

// Version is minikubelet's own version (git describe at build time).
var Version = "v0.1.0-dev"

// KubeletVersion is the string reported in node.status.nodeInfo.kubeletVersion.
func KubeletVersion() string { return "minikubelet/" + Version }
