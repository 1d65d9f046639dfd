package cri

// Labels and annotations minikubelet puts on sandboxes and containers so that the runtime's
// state maps back to pods. The io.kubernetes.* keys are the upstream kubelet's, so crictl
// and other tools show the same thing.
const (
	LabelPodName      = "io.kubernetes.pod.name"
	LabelPodNamespace = "io.kubernetes.pod.namespace"
	LabelPodUID       = "io.kubernetes.pod.uid"
	LabelContainer    = "io.kubernetes.container.name"
	// LabelNode scopes runtime objects to one node agent, so agents that share a runtime
	// (the test bed's sequential nodes) never adopt or reap each other's pods.
	LabelNode = "minikubelet.io/node"

	AnnotationRestartCount     = "io.kubernetes.container.restartCount"
	AnnotationHash             = "io.kubernetes.container.hash"
	AnnotationTermMsgPath      = "io.kubernetes.container.terminationMessagePath"
	AnnotationTermMsgPolicy    = "io.kubernetes.container.terminationMessagePolicy"
	AnnotationInit             = "minikubelet.io/init-container"
	AnnotationTermMsgHostPath  = "minikubelet.io/termination-message-host-path"
	AnnotationGracePeriod      = "io.kubernetes.pod.terminationGracePeriod"
	AnnotationConfigSource     = "kubernetes.io/config.source"
	AnnotationSandboxPodLogDir = "minikubelet.io/pod-log-dir"
)
