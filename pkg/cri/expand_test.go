package cri

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	for in, want := range map[string]string{
		"plain": "plain", "$(A)": "1", "x$(A)y$(B)": "x1ytwo", "$$(A)": "$(A)", "$$$(A)": "$1",
		"$(MISSING)": "$(MISSING)", "$(A": "$(A", "$": "$", "$x": "$x", "$()": "$()", "$(EMPTY)|": "|", "$$": "$",
	} {
		if got := Expand(in, lookup); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzExpand: never panics; input without "$" is unchanged; with no variables defined,
// expansion only ever turns "$$" into "$".
func FuzzExpand(f *testing.F) {
	for _, s := range []string{"$(A)", "$$(A)", "$(", "a$", "$$$", "$(A)$(B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Expand(s, func(string) (string, bool) { return "", false })
		if !strings.Contains(s, "$") && got != s {
			t.Fatalf("%q changed to %q", s, got)
		}
		if len(got) > len(s) {
			t.Fatalf("%q grew to %q with no variables", s, got)
		}
		_ = Expand(s, func(k string) (string, bool) { return "<" + k + ">", true })
	})
}
