package main

import (
	"context"
	"fmt"
	"log"

	"github.com/container-storage-interface/spec/lib/go/csi"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

// provisioner is external-provisioner's part (not served by the module proxy here),
// written on the same library: claims of classes naming this driver get a volume from the
// driver's CreateVolume and a PV with its CSI source, on the node the scheduler chose
// (WaitForFirstConsumer) through the topology key.
type provisioner struct{ d *driver }

func (p *provisioner) Provision(ctx context.Context, o controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	size := o.PVC.Spec.Resources.Requests[v1.ResourceStorage]
	c := &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}
	if m := o.PVC.Spec.VolumeMode; m != nil && *m == v1.PersistentVolumeBlock { // a backing file, not a folder
		c.AccessType = &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}}
	}
	req := &csi.CreateVolumeRequest{Name: o.PVName, Parameters: o.StorageClass.Parameters,
		CapacityRange: &csi.CapacityRange{RequiredBytes: size.Value()}, VolumeCapabilities: []*csi.VolumeCapability{c}}
	resp, err := p.d.CreateVolume(ctx, req)
	if err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	reclaim := v1.PersistentVolumeReclaimDelete
	if o.StorageClass.ReclaimPolicy != nil {
		reclaim = *o.StorageClass.ReclaimPolicy
	}
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: o.PVName, Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": DriverName}},
		Spec: v1.PersistentVolumeSpec{
			Capacity:                      v1.ResourceList{v1.ResourceStorage: size},
			AccessModes:                   o.PVC.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              o.StorageClass.Name,
			MountOptions:                  o.StorageClass.MountOptions,
			VolumeMode:                    o.PVC.Spec.VolumeMode,
			PersistentVolumeSource: v1.PersistentVolumeSource{CSI: &v1.CSIPersistentVolumeSource{
				Driver: DriverName, VolumeHandle: resp.Volume.VolumeId, VolumeAttributes: resp.Volume.VolumeContext}},
		},
	}
	if o.SelectedNodeName != "" {
		// The bed's node drivers use the node's name as their node ID and topology value.
		pv.Spec.NodeAffinity = &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
			MatchExpressions: []v1.NodeSelectorRequirement{{Key: TopologyKey, Operator: v1.NodeSelectorOpIn,
				Values: []string{o.SelectedNodeName}}}}}}}
	}
	log.Printf("provisioner: %s for claim %s/%s on node %q", pv.Name, o.PVC.Namespace, o.PVC.Name, o.SelectedNodeName)
	return pv, controller.ProvisioningFinished, nil
}

func (p *provisioner) Delete(ctx context.Context, pv *v1.PersistentVolume) error {
	if pv.Spec.CSI == nil {
		return fmt.Errorf("PV %s has no CSI source", pv.Name)
	}
	_, err := p.d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: pv.Spec.CSI.VolumeHandle})
	log.Printf("provisioner: deleted %s: %v", pv.Name, err)
	return err
}

// runProvisioner provisions for this driver with the kubeconfig's identity until ctx ends.
func runProvisioner(ctx context.Context, kubeconfig string, d *driver) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	pc := controller.NewProvisionController(ctx, client, DriverName, &provisioner{d: d}, controller.LeaderElection(false))
	log.Printf("provisioner: provisioning for %s", DriverName)
	go pc.Run(ctx)
	return nil
}
