package job_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/layout"
)

// The job's own objects are never an output: a spec naming one is refused,
// and so is a stitcher asked to publish there, before it reads anything.
// Every key constructor of keys.go has a row (TestReservedOutputKeysCoverKeys).
func TestReservedOutputKeys(t *testing.T) {
	const id = "job-1" // nativeSpec's
	tests := []struct {
		constructor string // the keys.go function that makes key, if any
		key         string
		valid       bool
	}{
		{"JobKey", layout.JobKey(id), false},
		{"ActiveKey", layout.ActiveKey(id), false},
		{"SpecKey", layout.SpecKey(id), false},
		{"StatusKey", layout.StatusKey(id), false},
		{"StitchLockKey", layout.StitchLockKey(id), false},
		{"CancelKey", layout.CancelKey(id), false},
		{"ChunksPrefix", layout.ChunksPrefix(id), false},
		{"MarkerKey", layout.MarkerKey(id, 7), false},
		{"SegmentKey", layout.SegmentKey(id, 7, 2, 1, "mp4"), false},
		{"AudioKeyFor", layout.AudioKeyFor(layout.SegmentKey(id, 7, 2, 1, "mp4")), false},
		{"LeasePrefix", layout.LeasePrefix(id), false},
		{"LeaseKey", layout.LeaseKey(id, 7), false},
		{"DefaultOutputKey", layout.DefaultOutputKey(id, "mp4"), true},
		// Names no constructor makes, next to those it does.
		{"", "renders/job-1/lease.7", false},
		{"", "renders/job-1/lease.000007.mp4", false},
		{"", "renders/job-1/chunks/000007.mp4", false},
		{"", "renders/job-1/", false},
		{"", "renders/other/output.mp4", false},
		{"", "outputs/other/final.mp4", false},
		{"", "renders/job-1/leaseholder.mp4", true},
		{"", "outputs/job-1/final/film.mp4", true},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := layout.ValidOutputKey(id, tt.key); got != tt.valid {
				t.Errorf("ValidOutputKey(%q, %q) = %v, want %v", id, tt.key, got, tt.valid)
			}
			s := nativeSpec()
			s.Output = tt.key
			s.Normalize()
			refused := false
			for _, p := range problemsOf(t, s.Validate(testAllow)) {
				refused = refused || p.Path == "output"
			}
			if refused == tt.valid {
				t.Errorf("spec output %q: refused = %v, want %v", tt.key, refused, !tt.valid)
			}
		})
	}
}

// TestReservedOutputKeysCoverKeys fails when keys.go gains a key
// constructor that TestReservedOutputKeys does not try as an output.
func TestReservedOutputKeysCoverKeys(t *testing.T) {
	covered := map[string]bool{
		"JobKey": true, "ActiveKey": true, "SpecKey": true, "StatusKey": true, "StitchLockKey": true, "CancelKey": true,
		"ChunksPrefix": true, "MarkerKey": true, "SegmentKey": true, "LeasePrefix": true, "LeaseKey": true, "DefaultOutputKey": true,
		"JobDir": true, "HistoryKey": true, "BudgetKey": true, "WebhookKey": true,
	}
	f, err := parser.ParseFile(token.NewFileSet(), "../layout/keys.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range f.Decls {
		fn, ok := d.(*ast.FuncDecl)
		if !ok || fn.Recv != nil || !fn.Name.IsExported() || !returnsOneString(fn) || !takesID(fn) {
			continue
		}
		n++
		if !covered[fn.Name.Name] {
			t.Errorf("keys.go: %s makes a key of a job; add it to TestReservedOutputKeys (and to isJobObject unless it is an output)", fn.Name.Name)
		}
	}
	if n != len(covered) {
		t.Errorf("keys.go has %d key constructors, the test knows %d", n, len(covered))
	}
}

func returnsOneString(fn *ast.FuncDecl) bool {
	r := fn.Type.Results
	if r == nil || len(r.List) != 1 || len(r.List[0].Names) > 1 {
		return false
	}
	id, ok := r.List[0].Type.(*ast.Ident)
	return ok && id.Name == "string"
}

func takesID(fn *ast.FuncDecl) bool {
	p := fn.Type.Params.List
	return len(p) > 0 && len(p[0].Names) > 0 && strings.EqualFold(p[0].Names[0].Name, "id")
}
