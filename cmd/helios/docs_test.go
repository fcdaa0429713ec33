package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/job"
)

// The README and the Makefile say what the commands do (issue 13, point 8).
func TestDocsMatchTheCommands(t *testing.T) {
	read := func(path string) string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	// The README and the reference in docs/, read as one text.
	readme, makefile := read("../../README.md"), read("../../Makefile")
	pages, _ := filepath.Glob("../../docs/*.md")
	for _, p := range pages {
		readme += read(p)
	}
	checks := []struct {
		ok   bool
		what string
	}{
		{!strings.Contains(readme, "Node.js 18"), "the README asks for Node.js 18, which the pinned CDK no longer supports"},
		{strings.Contains(readme, "Node.js 20 or newer") && strings.Contains(makefile, ">= 20"), "the README and make deps-node agree on Node.js 20+"},
		{regexp.MustCompile(`(?m)^synth:.* package layer`).MatchString(makefile), "make synth builds the packages and the layer it needs"},
		{!regexp.MustCompile(`chunks/\d{6}\.\d+\.mp4`).MatchString(readme), "the README shows a segment key of the old format"},
		{strings.Contains(readme, "FUNCTION_URL=$(aws cloudformation describe-stacks"), "the README says where FUNCTION_URL comes from"},
		{!strings.Contains(readme, "what `helios render --emit-job` writes"), "the README presents --emit-job as this CLI's"},
		{strings.Contains(readme, "--restart") && strings.Contains(readme, "--version"), "the README lists --restart and --version"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Error(c.what)
		}
	}
}

// docPages are the README and the reference pages in docs/.
func docPages(t *testing.T) map[string]string {
	t.Helper()
	pages := map[string]string{}
	paths, _ := filepath.Glob("../../docs/*.md")
	for _, p := range append(paths, "../../README.md") {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		pages[p] = string(data)
	}
	return pages
}

// Every environment variable pkg/config reads is in the README's table,
// and every field of a spec is in docs/SPEC.md.
func TestDocsCoverConfigAndSpec(t *testing.T) {
	pages := docPages(t)
	readme, spec := pages["../../README.md"], pages["../../docs/SPEC.md"]
	for _, name := range config.Names {
		if !strings.Contains(readme, "| `"+name+"`") {
			t.Errorf("%s is not in the README's configuration table", name)
		}
	}
	seen := map[reflect.Type]bool{}
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || typ.PkgPath() != reflect.TypeFor[job.Spec]().PkgPath() {
			return
		}
		seen[typ] = true
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			if !strings.Contains(spec, "`"+name+"`") && !strings.Contains(spec, "`"+path+name+"`") && !strings.Contains(spec, "`"+path+name+".") {
				t.Errorf("spec field %s%s is not in docs/SPEC.md", path, name)
			}
			walk(path+name+".", f.Type)
		}
	}
	walk("", reflect.TypeFor[job.Spec]())
}

// Every link between the pages goes somewhere: the file is there and so is
// the heading it names.
func TestDocsLinks(t *testing.T) {
	pages := docPages(t)
	slug := func(h string) string {
		h = strings.ToLower(strings.TrimSpace(h))
		h = regexp.MustCompile("[`*_]").ReplaceAllString(h, "")
		h = regexp.MustCompile(`[^\w\- ]`).ReplaceAllString(h, "")
		return strings.ReplaceAll(h, " ", "-")
	}
	anchors := func(text string) map[string]bool {
		a, fence := map[string]bool{}, false
		for _, ln := range strings.Split(text, "\n") {
			if strings.HasPrefix(ln, "```") {
				fence = !fence
			}
			if h, ok := strings.CutPrefix(strings.TrimLeft(ln, "#"), " "); !fence && strings.HasPrefix(ln, "#") && ok {
				a[slug(h)] = true
			}
		}
		return a
	}
	link := regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)\)`)
	for page, text := range pages {
		fence := false
		for _, ln := range strings.Split(text, "\n") {
			if strings.HasPrefix(ln, "```") {
				fence = !fence
			}
			if fence {
				continue
			}
			for _, m := range link.FindAllStringSubmatch(ln, -1) {
				target := m[1]
				if regexp.MustCompile(`^[a-z]+:`).MatchString(target) {
					continue
				}
				path, anchor, _ := strings.Cut(target, "#")
				file := page
				if path != "" {
					file = filepath.Join(filepath.Dir(page), path)
					if _, err := os.Stat(file); err != nil {
						t.Errorf("%s links to %s: %v", page, target, err)
						continue
					}
				}
				if anchor == "" || !strings.HasSuffix(file, ".md") {
					continue
				}
				body, ok := pages[filepath.Clean(file)]
				if !ok {
					data, _ := os.ReadFile(file)
					body = string(data)
				}
				if !anchors(body)[anchor] {
					t.Errorf("%s links to %s: no such heading", page, target)
				}
			}
		}
	}
}

// The README's example job is examples/jobs/demo.json, as it is.
func TestReadmeJobIsTheDemo(t *testing.T) {
	readme := docPages(t)["../../README.md"]
	m := regexp.MustCompile("(?s)## A job\n.*?```json\n(.*?)```").FindStringSubmatch(readme)
	if m == nil {
		t.Fatal("no JSON block under the README's \"A job\"")
	}
	demo, err := os.ReadFile("../../examples/jobs/demo.json")
	if err != nil {
		t.Fatal(err)
	}
	var shown, file any
	if err := json.Unmarshal([]byte(m[1]), &shown); err != nil {
		t.Fatalf("the README's job: %v", err)
	}
	json.Unmarshal(demo, &file)
	if !reflect.DeepEqual(shown, file) {
		t.Errorf("the README's job is not examples/jobs/demo.json:\n%s", m[1])
	}
}
