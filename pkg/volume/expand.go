package volume

import (
	"context"
	"fmt"
	"slices"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/minikubelet/minikubelet/pkg/volume/csi"
)

// expandable is a claim's CSI volume that can grow online.
type expandable struct {
	claim, namespace string
	vol              csi.Volume
	target           string
}

// resizeConditions are the claim conditions of a resize, all dropped when it is done
// (upstream's MergeResizeConditionOnPVC without keeping the old ones).
var resizeConditions = []v1.PersistentVolumeClaimConditionType{v1.PersistentVolumeClaimResizing,
	v1.PersistentVolumeClaimFileSystemResizePending, v1.PersistentVolumeClaimControllerResizeError, v1.PersistentVolumeClaimNodeResizeError}

// expandIfAsked grows the volume on the node as upstream's node expander does: when the
// resizer has grown the PV past the claim's status capacity and marked the claim
// NodeResizePending (or a node expansion was in progress), the claim is marked
// NodeResizeInProgress, the driver expands the volume, and the claim's status gets the new
// capacity with the resize status and conditions cleared; events on the pod and the claim.
func (m *Manager) expandIfAsked(ctx context.Context, pod *v1.Pod, e *expandable) {
	claims := m.cfg.Client.CoreV1().PersistentVolumeClaims(e.namespace)
	pvc, err := claims.Get(ctx, e.claim, metav1.GetOptions{})
	if err != nil {
		return
	}
	pv, err := m.cfg.Client.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		return
	}
	newSize, cur := pv.Spec.Capacity.Storage().DeepCopy(), pvc.Status.Capacity.Storage()
	st := pvc.Status.AllocatedResourceStatuses[v1.ResourceStorage]
	if cur.Cmp(newSize) >= 0 || st != v1.PersistentVolumeClaimNodeResizePending && st != v1.PersistentVolumeClaimNodeResizeInProgress {
		return
	}
	logger := klog.FromContext(ctx)
	if st != v1.PersistentVolumeClaimNodeResizeInProgress {
		pvc = pvc.DeepCopy()
		pvc.Status.AllocatedResourceStatuses[v1.ResourceStorage] = v1.PersistentVolumeClaimNodeResizeInProgress
		if pvc, err = claims.UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
			logger.Error(err, "Marking node expansion in progress failed", "claim", klog.KRef(e.namespace, e.claim))
			return
		}
	}
	node := ""
	if n, err := m.nodeName(); err == nil {
		node = n
	}
	if err := m.cfg.CSI.Expand(ctx, e.vol, e.target, newSize.Value()); err != nil {
		msg := fmt.Sprintf("MountVolume.NodeExpandVolume failed for volume %q : %v", e.vol.SpecName, err)
		m.event(pod, v1.EventTypeWarning, "FileSystemResizeFailed", msg)
		return
	}
	pvc = pvc.DeepCopy()
	pvc.Status.Capacity[v1.ResourceStorage] = newSize
	delete(pvc.Status.AllocatedResourceStatuses, v1.ResourceStorage)
	if len(pvc.Status.AllocatedResourceStatuses) == 0 {
		pvc.Status.AllocatedResourceStatuses = nil
	}
	pvc.Status.Conditions = slices.DeleteFunc(pvc.Status.Conditions, func(c v1.PersistentVolumeClaimCondition) bool {
		return slices.Contains(resizeConditions, c.Type)
	})
	if pvc, err = claims.UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		logger.Error(err, "Marking node expansion finished failed", "claim", klog.KRef(e.namespace, e.claim))
		return
	}
	msg := fmt.Sprintf("MountVolume.NodeExpandVolume succeeded for volume %q %s", e.vol.SpecName, node)
	m.event(pod, v1.EventTypeNormal, "FileSystemResizeSuccessful", msg)
	m.event(pvc, v1.EventTypeNormal, "FileSystemResizeSuccessful", msg)
}

func (m *Manager) nodeName() (string, error) {
	if m.cfg.Node == nil {
		return "", fmt.Errorf("no node")
	}
	n, err := m.cfg.Node()
	if err != nil {
		return "", err
	}
	return n.Name, nil
}
