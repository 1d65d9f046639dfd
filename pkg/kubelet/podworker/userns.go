package podworker

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/nodedeclaredfeatures/features/usernamespaceshostnetwork"
	ndftypes "k8s.io/component-helpers/nodedeclaredfeatures/types"
)

// reasonFeatureUnsupported is upstream's admission reason for a pod needing a node feature
// the node does not declare (lifecycle.PodFeatureUnsupported).
const reasonFeatureUnsupported = "PodFeatureUnsupported"

// admitUserNamespace is upstream's declared-features admission (NodeDeclaredFeatures, GA
// in v1.37) as it concerns user namespaces: a pod on the host network with
// `hostUsers: false` needs UserNamespacesHostNetworkSupport, which a node declares only
// with that alpha gate on (off in v1.37, and never on here), so it is refused. The API
// server refuses such pods too unless its gate is on; static pods reach only the node.
// Other `hostUsers: false` pods pass: their sandbox is refused if the runtime cannot give
// them a user namespace (createSandbox).
func admitUserNamespace(pod *v1.Pod) (reason, message string) {
	f := usernamespaceshostnetwork.Feature
	if f.InferForScheduling(&ndftypes.PodInfo{Spec: &pod.Spec, Status: &pod.Status}) {
		return reasonFeatureUnsupported, "Pod requires node features that are not available: " + f.Name()
	}
	return "", ""
}
