package nodeauth

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestGet(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "cm", nil)
	notFound := apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, "cm")
	Settle = 200 * time.Millisecond
	for _, tc := range []struct {
		name    string
		answers []error // the last one repeats
		calls   int     // at least
		want    func(error) bool
	}{
		{"allowed at once", []error{nil}, 1, func(err error) bool { return err == nil }},
		{"refused, then not found", []error{forbidden, forbidden, notFound}, 3, apierrors.IsNotFound},
		{"refused for good", []error{forbidden}, 2, apierrors.IsForbidden},
		{"other error not retried", []error{notFound, nil}, 1, apierrors.IsNotFound},
	} {
		n := 0
		_, err := Get(context.Background(), func(context.Context) (int, error) {
			err := tc.answers[min(n, len(tc.answers)-1)]
			n++
			return n, err
		})
		if !tc.want(err) || n < tc.calls || (tc.name != "refused for good" && n != tc.calls) {
			t.Errorf("%s: err %v after %d calls", tc.name, err, n)
		}
	}
}
