package node

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// ThresholdBytes turns an eviction threshold ("100Mi" or "10%") into bytes of total.
func ThresholdBytes(val string, total int64) (int64, error) {
	if p, ok := strings.CutSuffix(val, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f < 0 || f > 100 {
			return 0, fmt.Errorf("invalid percentage %q", val)
		}
		return int64(float64(total) * f / 100), nil
	}
	q, err := resource.ParseQuantity(val)
	if err != nil {
		return 0, err
	}
	return q.Value(), nil
}
