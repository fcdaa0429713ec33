package archtest

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// layoutFuncs are the functions, by package, that build or parse the keys
// of the stored state pkg/jobstore owns: completion markers, segments and
// their audio, the chunks folder, the history and the default output.
var layoutFuncs = map[string][]string{
	"pkg/layout": {"MarkerKey", "SegmentKey", "AudioKeyFor", "ChunksPrefix", "HistoryKey", "DefaultOutputKey"},
	"pkg/job":    {"MarkerIndex", "SegmentIndex", "IsSegmentKey"},
}

// layoutMethods are the methods of job.WorkerJob that build an attempt's
// keys (SegmentKey, AudioKey); a call of either with no argument is taken
// for one of them.
var layoutMethods = []string{"SegmentKey", "AudioKey"}

// layoutOwners may build those keys: the store, pkg/layout and pkg/job
// that name them, and the adapter's conformance suite, whose fake worker
// stores nothing. internal/ (scaffolding) and tests are not checked.
var layoutOwners = []string{"pkg/jobstore", "pkg/layout", "pkg/job", "pkg/adapter/adaptertest"}

// TestOneOwnerOfTheLayout checks that markers, segments, history and the
// output are read and written through pkg/jobstore only: no other package
// (tests and internal/ aside) calls the functions that make their keys.
func TestOneOwnerOfTheLayout(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .CgoFiles}} {{.}}{{end}}`, "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(fields[0], module)
		if slices.Contains(layoutOwners, pkg) || under(pkg, "internal") {
			continue
		}
		for _, name := range fields[2:] {
			file := filepath.Join(fields[1], name)
			for _, v := range layoutCalls(t, file, nil) {
				t.Errorf("%s: %s builds a key of the job layout; go through a method of *jobstore.Store", v, pkg)
			}
			checked++
		}
	}
	if checked < 50 {
		t.Fatalf("checked %d files: %s", checked, out)
	}
}

// TestLayoutCallsFound keeps the check above from passing vacuously.
func TestLayoutCallsFound(t *testing.T) {
	src := `package p

import (
	j "github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/job/other"
)

func f(w j.WorkerJob, job other.T) {
	_ = layout.MarkerKey("a", 1)
	_ = layout.HistoryKey
	_ = w.SegmentKey()
	_ = w.AudioKey()
	_ = j.MarkerIndex("a", "k")
	_ = layout.JobKey("a")    // not the layout jobstore owns alone
	_ = job.MarkerKey("a", 1) // another package's
	_ = j.SegmentKey("a")     // not pkg/job's
	_ = w.SegmentKey          // a field, say WorkerResult's
	_ = w.AudioKey("x")       // another method
}
`
	got := layoutCalls(t, "p.go", []byte(src))
	want := []string{"p.go:10:6: layout.MarkerKey", "p.go:11:6: layout.HistoryKey", "p.go:12:6: SegmentKey()", "p.go:13:6: AudioKey()", "p.go:14:6: job.MarkerIndex"}
	if !slices.Equal(got, want) {
		t.Errorf("found %q, want %q", got, want)
	}
}

// layoutCalls returns where file (src if not nil) uses a layout function
// of pkg/layout or pkg/job, or calls a layout method.
func layoutCalls(t *testing.T, file string, src []byte) []string {
	t.Helper()
	fset := token.NewFileSet()
	var from any // the file, unless src is given: a nil []byte would be an empty file
	if src != nil {
		from = src
	}
	f, err := parser.ParseFile(fset, file, from, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	// The names this file gives the packages of layoutFuncs.
	names := map[string]string{}
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		pkg, ok := strings.CutPrefix(path, module)
		if _, layout := layoutFuncs[pkg]; !ok || !layout {
			continue
		}
		name := pkg[strings.LastIndex(pkg, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		names[name] = pkg
	}
	var found []string
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok && slices.Contains(layoutFuncs[names[x.Name]], n.Sel.Name) {
				pkg := names[x.Name]
				found = append(found, fmt.Sprintf("%s: %s.%s", fset.Position(n.Pos()), path.Base(pkg), n.Sel.Name))
			}
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok && len(n.Args) == 0 && slices.Contains(layoutMethods, sel.Sel.Name) {
				found = append(found, fmt.Sprintf("%s: %s()", fset.Position(n.Pos()), sel.Sel.Name))
			}
		}
		return true
	})
	return found
}
