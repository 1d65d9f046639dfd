package csi

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
)

// annotationNodeID maps driver names to this node's IDs in them (JSON), as upstream's
// nodeinfomanager keeps it on the Node.
const annotationNodeID = "csi.volume.kubernetes.io/nodeid"

// ensureCSINode creates this node's CSINode (owned by the Node, no drivers yet) as the
// upstream kubelet does at start, retrying until the Node exists or ctx ends.
func (r *Registry) ensureCSINode(ctx context.Context) {
	if r.cfg.Client == nil {
		return
	}
	for {
		_, err := r.csiNode(ctx)
		if err == nil {
			return
		}
		klog.FromContext(ctx).V(2).Info("CSINode not created yet", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

// csiNode returns this node's CSINode, creating it when missing.
func (r *Registry) csiNode(ctx context.Context) (*storagev1.CSINode, error) {
	c := r.cfg.Client.StorageV1().CSINodes()
	cn, err := c.Get(ctx, r.cfg.NodeName, metav1.GetOptions{})
	if err == nil || !apierrors.IsNotFound(err) {
		return cn, err
	}
	node, err := r.cfg.Client.CoreV1().Nodes().Get(ctx, r.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	cn = &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: r.cfg.NodeName,
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}}}
	return c.Create(ctx, cn, metav1.CreateOptions{})
}

// recordDriver puts the driver on the node: its node ID in the Node's annotation, its
// topology as the Node's labels, and its entry in CSINode.
func (r *Registry) recordDriver(ctx context.Context, name, nodeID string, maxVolumes int64, topology map[string]string) error {
	if r.cfg.Client == nil {
		return nil
	}
	err := r.updateNode(ctx, func(n *v1.Node) error {
		for k, v := range topology {
			if old, ok := n.Labels[k]; ok && old != v {
				return fmt.Errorf("detected topology value collision: driver reported %q:%q but existing label is %q:%q", k, v, k, old)
			}
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		for k, v := range topology {
			n.Labels[k] = v
		}
		return setNodeID(n, name, nodeID)
	})
	if err != nil {
		return err
	}
	entry := storagev1.CSINodeDriver{Name: name, NodeID: nodeID, TopologyKeys: sets.List(sets.KeySet(topology))}
	if maxVolumes > 0 {
		entry.Allocatable = &storagev1.VolumeNodeResources{Count: new(int32(min(maxVolumes, math.MaxInt32)))}
	}
	return r.updateCSINode(ctx, func(cn *storagev1.CSINode) {
		cn.Spec.Drivers = slices.DeleteFunc(cn.Spec.Drivers, func(d storagev1.CSINodeDriver) bool { return d.Name == name })
		cn.Spec.Drivers = append(cn.Spec.Drivers, entry)
	})
}

// forgetDriver takes a deregistered driver off the node (its topology labels stay, as
// upstream leaves them).
func (r *Registry) forgetDriver(ctx context.Context, name string) error {
	if r.cfg.Client == nil {
		return nil
	}
	if err := r.updateNode(ctx, func(n *v1.Node) error { return setNodeID(n, name, "") }); err != nil {
		return err
	}
	return r.updateCSINode(ctx, func(cn *storagev1.CSINode) {
		cn.Spec.Drivers = slices.DeleteFunc(cn.Spec.Drivers, func(d storagev1.CSINodeDriver) bool { return d.Name == name })
	})
}

// setNodeID sets (or, with id "", removes) the driver's entry in the node ID annotation.
func setNodeID(n *v1.Node, driver, id string) error {
	ids := map[string]string{}
	if v := n.Annotations[annotationNodeID]; v != "" {
		if err := json.Unmarshal([]byte(v), &ids); err != nil {
			return fmt.Errorf("failed to parse node's %q annotation value (%q) err=%v", annotationNodeID, v, err)
		}
	}
	if id == "" {
		delete(ids, driver)
	} else {
		ids[driver] = id
	}
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	if len(ids) == 0 {
		delete(n.Annotations, annotationNodeID)
		return nil
	}
	b, err := json.Marshal(ids)
	if err != nil {
		return err
	}
	n.Annotations[annotationNodeID] = string(b)
	return nil
}

func (r *Registry) updateNode(ctx context.Context, change func(*v1.Node) error) error {
	nodes := r.cfg.Client.CoreV1().Nodes()
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		n, err := nodes.Get(ctx, r.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		before := n.DeepCopy()
		if err := change(n); err != nil {
			return err
		}
		if equalMeta(before, n) {
			return nil
		}
		_, err = nodes.Update(ctx, n, metav1.UpdateOptions{})
		return err
	})
}

func equalMeta(a, b *v1.Node) bool {
	return maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations)
}

func (r *Registry) updateCSINode(ctx context.Context, change func(*storagev1.CSINode)) error {
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cn, err := r.csiNode(ctx)
		if err != nil {
			return err
		}
		change(cn)
		_, err = r.cfg.Client.StorageV1().CSINodes().Update(ctx, cn, metav1.UpdateOptions{})
		return err
	})
}
