// Package archtest checks the layering docs/ARCHITECTURE.md states, from
// the imports `go list` reports (non-test files only).
package archtest

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/helios-project/infrastructure/"

// imports maps each package of the module (relative path) to the packages
// of the module it imports.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(fields[0], module)
		m[pkg] = nil
		for _, imp := range fields[1:] {
			if rel, ok := strings.CutPrefix(imp, module); ok {
				m[pkg] = append(m[pkg], rel)
			}
		}
	}
	if len(m) < 20 {
		t.Fatalf("go list found %d packages: %s", len(m), out)
	}
	return m
}

func under(pkg string, roots ...string) bool {
	for _, r := range roots {
		if pkg == r || strings.HasPrefix(pkg, r+"/") {
			return true
		}
	}
	return false
}

func TestLayering(t *testing.T) {
	rules := []struct {
		name string
		bad  func(pkg, imp string) bool
	}{
		{"internal/ is test and demo scaffolding: only it and e2e/ import it", func(pkg, imp string) bool {
			return under(imp, "internal") && !under(pkg, "internal", "e2e")
		}},
		{"pkg/job imports nothing of ours but pkg/joberr, pkg/layout, pkg/framerate and pkg/ffargs", func(pkg, imp string) bool {
			return pkg == "pkg/job" && !slices.Contains([]string{"pkg/joberr", "pkg/layout", "pkg/framerate", "pkg/ffargs"}, imp)
		}},
		{"pkg/joberr and pkg/layout import nothing of ours", func(pkg, imp string) bool {
			return (pkg == "pkg/joberr" || pkg == "pkg/layout") && under(imp, "pkg", "cmd", "functions", "internal", "layers", "e2e")
		}},
		{"the functions' mains know pkg/pipeline only", func(pkg, imp string) bool {
			return under(pkg, "functions") && imp != "pkg/pipeline"
		}},
		{"pkg/ never imports a main (cmd/, functions/, layers/)", func(pkg, imp string) bool {
			return under(pkg, "pkg") && under(imp, "cmd", "functions", "layers")
		}},
		{"only the mains, the CLI and the scaffolding know pkg/pipeline", func(pkg, imp string) bool {
			return imp == "pkg/pipeline" && under(pkg, "pkg")
		}},
		{"the parts never import each other upward", func(pkg, imp string) bool {
			upward := map[string][]string{
				"pkg/orchestrator": {"pkg/trigger", "pkg/worker", "pkg/stitch", "pkg/serve"},
				"pkg/adapter":      {"pkg/trigger", "pkg/orchestrator", "pkg/worker", "pkg/stitch"},
				"pkg/worker":       {"pkg/trigger", "pkg/orchestrator", "pkg/adapter", "pkg/stitch"},
				"pkg/stitch":       {"pkg/trigger", "pkg/orchestrator", "pkg/adapter", "pkg/worker"},
				"pkg/jobstore":     {"pkg/trigger", "pkg/orchestrator", "pkg/adapter", "pkg/worker", "pkg/stitch", "pkg/serve"},
				"pkg/storage":      {"pkg/jobstore"},
			}
			return slices.Contains(upward[pkg], imp)
		}},
	}
	for pkg, imps := range imports(t) {
		for _, imp := range imps {
			for _, r := range rules {
				if r.bad(pkg, imp) {
					t.Errorf("%s imports %s: %s", pkg, imp, r.name)
				}
			}
		}
	}
}
