package testbed

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The agent's binary must not link a package that calls reflect's MethodByName with a
// name known only at run time (html/template through golang.org/x/net/trace): the linker
// would then keep every exported method, and the binary's resident code grows by 40%.
func TestMinikubeletBuildKeepsDeadCodeElimination(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go is not on PATH")
	}
	cmd := exec.Command("go", "list", "-deps", "-tags", MinikubeletTags, "./cmd/minikubelet")
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	if !deps["google.golang.org/grpc"] {
		t.Fatalf("go list gave no google.golang.org/grpc among %d packages: the check below would prove nothing", len(deps))
	}
	for _, bad := range []string{"golang.org/x/net/trace", "html/template"} {
		if deps[bad] {
			t.Errorf("./cmd/minikubelet built with tags %q links %s", MinikubeletTags, bad)
		}
	}

	// The Makefile's build uses the same tags.
	mk, err := os.ReadFile(filepath.Join(RepoRoot(), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	got := "(no GOTAGS line)"
	if m := regexp.MustCompile(`(?m)^GOTAGS := (.*)$`).FindSubmatch(mk); m != nil {
		got = string(m[1])
	}
	if got != MinikubeletTags {
		t.Errorf("Makefile GOTAGS = %q, want %q", got, MinikubeletTags)
	}
}
