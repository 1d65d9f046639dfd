// Package eviction is the node's eviction manager: it watches the eviction signals
// (memory, node and image filesystems, PIDs) against the configured thresholds, reports
// the pressure conditions, reclaims node-level resources (dead containers, unused
// images) and, when that is not enough, evicts pods in upstream's order.
package eviction

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
)

// Signal is an eviction signal, named as in the kubelet's configuration.
type Signal string

// Upstream's signals (pkg/kubelet/eviction/api).
const (
	SignalMemoryAvailable            Signal = "memory.available"
	SignalAllocatableMemoryAvailable Signal = "allocatableMemory.available"
	SignalNodeFsAvailable            Signal = "nodefs.available"
	SignalNodeFsInodesFree           Signal = "nodefs.inodesFree"
	SignalImageFsAvailable           Signal = "imagefs.available"
	SignalImageFsInodesFree          Signal = "imagefs.inodesFree"
	SignalContainerFsAvailable       Signal = "containerfs.available"
	SignalContainerFsInodesFree      Signal = "containerfs.inodesFree"
	SignalPIDAvailable               Signal = "pid.available"
)

// Resources the eviction manager accounts that are not resource names of the API.
const (
	resourceInodes v1.ResourceName = "inodes"
	resourcePIDs   v1.ResourceName = "pids"
)

// signalResource is what each signal starves (upstream's signalToResource); a signal not
// in it is not supported.
var signalResource = map[Signal]v1.ResourceName{
	SignalMemoryAvailable:            v1.ResourceMemory,
	SignalAllocatableMemoryAvailable: v1.ResourceMemory,
	SignalNodeFsAvailable:            v1.ResourceEphemeralStorage,
	SignalNodeFsInodesFree:           resourceInodes,
	SignalImageFsAvailable:           v1.ResourceEphemeralStorage,
	SignalImageFsInodesFree:          resourceInodes,
	SignalContainerFsAvailable:       v1.ResourceEphemeralStorage,
	SignalContainerFsInodesFree:      resourceInodes,
	SignalPIDAvailable:               resourcePIDs,
}

// signalCondition is the node condition a met threshold of the signal reports.
var signalCondition = map[Signal]v1.NodeConditionType{
	SignalMemoryAvailable:            v1.NodeMemoryPressure,
	SignalAllocatableMemoryAvailable: v1.NodeMemoryPressure,
	SignalNodeFsAvailable:            v1.NodeDiskPressure,
	SignalNodeFsInodesFree:           v1.NodeDiskPressure,
	SignalImageFsAvailable:           v1.NodeDiskPressure,
	SignalImageFsInodesFree:          v1.NodeDiskPressure,
	SignalPIDAvailable:               v1.NodePIDPressure,
}

// Value is a threshold's amount: an absolute quantity, or a fraction of the capacity.
type Value struct {
	Quantity   *resource.Quantity
	Percentage float32 // 0..1
}

// Of is the amount against capacity.
func (v Value) Of(capacity *resource.Quantity) *resource.Quantity {
	if v.Quantity != nil {
		q := v.Quantity.DeepCopy()
		return &q
	}
	return resource.NewQuantity(int64(float64(capacity.Value())*float64(v.Percentage)), resource.BinarySI)
}

func (v Value) equal(o Value) bool {
	if v.Quantity != nil || o.Quantity != nil {
		return v.Quantity != nil && o.Quantity != nil && v.Quantity.Cmp(*o.Quantity) == 0
	}
	return v.Percentage == o.Percentage
}

// Threshold is met while the signal's available amount is below Value. A hard threshold
// (GracePeriod 0) evicts at once; a soft one once met for GracePeriod. Once met, it stays
// met until MinReclaim more than Value is available.
type Threshold struct {
	Signal      Signal
	Value       Value
	GracePeriod time.Duration
	MinReclaim  *Value
}

func (t Threshold) hard() bool { return t.GracePeriod == 0 }

func (t Threshold) same(o Threshold) bool {
	return t.Signal == o.Signal && t.GracePeriod == o.GracePeriod && t.Value.equal(o.Value)
}

func (t Threshold) String() string {
	v := fmt.Sprintf("%v%%", t.Value.Percentage*100)
	if t.Value.Quantity != nil {
		v = t.Value.Quantity.String()
	}
	return fmt.Sprintf("%s<%s (grace period %v)", t.Signal, v, t.GracePeriod)
}

// Settings are the eviction fields of the kubelet's configuration.
type Settings struct {
	Hard, Soft, SoftGracePeriod, MinimumReclaim map[string]string
	// EnforcePods: enforceNodeAllocatable includes "pods", which adds an
	// allocatableMemory.available threshold beside each hard memory.available one.
	EnforcePods bool
}

// SettingsOf gathers the eviction fields of the kubelet's configuration.
func SettingsOf(k *kubeletv1beta1.KubeletConfiguration) Settings {
	return Settings{Hard: k.EvictionHard, Soft: k.EvictionSoft, SoftGracePeriod: k.EvictionSoftGracePeriod,
		MinimumReclaim: k.EvictionMinimumReclaim, EnforcePods: slices.Contains(k.EnforceNodeAllocatable, "pods")}
}

// reserving are the signals whose hard thresholds allocatable leaves out, and the
// resource each holds back.
var reserving = map[Signal]v1.ResourceName{SignalMemoryAvailable: v1.ResourceMemory, SignalNodeFsAvailable: v1.ResourceEphemeralStorage}

// HardReservation is what the hard memory.available and nodefs.available thresholds hold
// back from the node's allocatable, of capacity (upstream's hardEvictionReservation).
func HardReservation(ts []Threshold, capacity v1.ResourceList) v1.ResourceList {
	out := v1.ResourceList{}
	for _, t := range ts {
		name, ok := reserving[t.Signal]
		if !ok || !t.hard() {
			continue
		}
		c := capacity[name]
		out[name] = *t.Value.Of(&c)
	}
	return out
}

// ParseThresholds turns the settings into thresholds with upstream's rules and errors: a
// known signal, a positive quantity or a percentage within 0..100 (0% and 100% turn the
// threshold off), a grace period for every soft threshold, a non-negative minimum
// reclaim. containerfs.* thresholds are accepted and dropped: without a separate
// container filesystem upstream replaces them by the nodefs or imagefs ones anyway.
func ParseThresholds(s Settings) ([]Threshold, error) {
	hard, err := parseStatements(s.Hard)
	if err != nil {
		return nil, err
	}
	soft, err := parseStatements(s.Soft)
	if err != nil {
		return nil, err
	}
	grace := map[Signal]time.Duration{}
	for name, val := range s.SoftGracePeriod {
		sig := Signal(name)
		if _, ok := signalResource[sig]; !ok {
			return nil, fmt.Errorf("unsupported eviction signal %v", sig)
		}
		d, err := time.ParseDuration(val)
		if err != nil {
			return nil, err
		}
		if d < 0 {
			return nil, fmt.Errorf("invalid eviction grace period specified: %v, must be a positive value", val)
		}
		grace[sig] = d
	}
	for i := range soft {
		d, ok := grace[soft[i].Signal]
		if !ok {
			return nil, fmt.Errorf("grace period must be specified for the soft eviction threshold %v", soft[i].Signal)
		}
		soft[i].GracePeriod = d
	}
	reclaim, err := parseMinimumReclaims(s.MinimumReclaim)
	if err != nil {
		return nil, err
	}
	var out []Threshold
	for _, t := range append(hard, soft...) {
		if t.Signal == SignalContainerFsAvailable || t.Signal == SignalContainerFsInodesFree {
			continue
		}
		if r, ok := reclaim[t.Signal]; ok {
			t.MinReclaim = &r
		}
		out = append(out, t)
	}
	if s.EnforcePods {
		for _, t := range out {
			if t.Signal == SignalMemoryAvailable && t.hard() {
				out = append(out, Threshold{Signal: SignalAllocatableMemoryAvailable, Value: t.Value, MinReclaim: t.MinReclaim})
			}
		}
	}
	return out, nil
}

func parseStatements(statements map[string]string) ([]Threshold, error) {
	var out []Threshold
	for name, val := range statements {
		t, err := parseStatement(Signal(name), val)
		if err != nil {
			return nil, err
		}
		if t != nil {
			out = append(out, *t)
		}
	}
	return out, nil
}

func parseStatement(sig Signal, val string) (*Threshold, error) {
	if _, ok := signalResource[sig]; !ok {
		return nil, fmt.Errorf("unsupported eviction signal %v", sig)
	}
	if strings.HasSuffix(val, "%") {
		if val == "0%" || val == "100%" {
			return nil, nil
		}
		p, err := parsePercentage(val)
		if err != nil {
			return nil, err
		}
		if p < 0 {
			return nil, fmt.Errorf("eviction percentage threshold %v must be >= 0%%: %s", sig, val)
		}
		if p > 1 {
			return nil, fmt.Errorf("eviction percentage threshold %v must be <= 100%%: %s", sig, val)
		}
		return &Threshold{Signal: sig, Value: Value{Percentage: p}}, nil
	}
	q, err := resource.ParseQuantity(val)
	if err != nil {
		return nil, err
	}
	if q.Sign() <= 0 {
		return nil, fmt.Errorf("eviction threshold %v must be positive: %s", sig, &q)
	}
	return &Threshold{Signal: sig, Value: Value{Quantity: &q}}, nil
}

func parsePercentage(val string) (float32, error) {
	f, err := strconv.ParseFloat(strings.TrimRight(val, "%"), 32)
	if err != nil {
		return 0, err
	}
	return float32(f) / 100, nil
}

func parseMinimumReclaims(statements map[string]string) (map[Signal]Value, error) {
	out := map[Signal]Value{}
	for name, val := range statements {
		sig := Signal(name)
		if _, ok := signalResource[sig]; !ok {
			return nil, fmt.Errorf("unsupported eviction signal %v", sig)
		}
		if strings.HasSuffix(val, "%") {
			p, err := parsePercentage(val)
			if err != nil {
				return nil, err
			}
			if p <= 0 {
				return nil, fmt.Errorf("eviction percentage minimum reclaim %v must be positive: %s", sig, val)
			}
			out[sig] = Value{Percentage: p}
			continue
		}
		q, err := resource.ParseQuantity(val)
		if err != nil {
			return nil, err
		}
		if q.Sign() < 0 {
			return nil, fmt.Errorf("negative eviction minimum reclaim specified for %v", sig)
		}
		out[sig] = Value{Quantity: &q}
	}
	return out, nil
}
