package e2e

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/helios-project/infrastructure/pkg/config"
)

// loadTemplate reads template.yaml; CloudFormation's short tags (!Ref,
// !Sub, !GetAtt) decode as their plain values.
func loadTemplate(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile("../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	stripTags(&doc)
	var m map[string]any
	if err := doc.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func stripTags(n *yaml.Node) {
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		n.Tag = ""
	}
	for _, c := range n.Content {
		stripTags(c)
	}
}

func get(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

func TestSAMTemplate(t *testing.T) {
	tpl := loadTemplate(t)
	fn := get(tpl, "Globals", "Function")
	if get(fn, "Runtime") != "provided.al2023" || get(fn, "Handler") != "bootstrap" || !slices.Equal(toStrings(get(fn, "Architectures")), []string{"arm64"}) {
		t.Errorf("Globals.Function = %v", fn)
	}
	res := get(tpl, "Resources").(map[string]any)
	for logical, zip := range map[string]string{
		"OrchestratorFunction": "build/lambda/orchestrator.zip",
		"WorkerFunction":       "build/lambda/worker.zip",
		"StitcherFunction":     "build/lambda/stitcher.zip",
	} {
		if got := get(res, logical, "Properties", "CodeUri"); got != zip {
			t.Errorf("%s CodeUri = %v, want %s (what make package writes)", logical, got, zip)
		}
	}
	for _, logical := range []string{"WorkerFunction", "StitcherFunction"} {
		if !slices.Contains(toStrings(get(res, logical, "Properties", "Layers")), "FfmpegLayer") {
			t.Errorf("%s lacks the ffmpeg layer", logical)
		}
	}
	if get(res, "FfmpegLayer", "Properties", "ContentUri") != "layers/ffmpeg/build/ffmpeg-layer.zip" {
		t.Error("FfmpegLayer does not use layers/ffmpeg/build/ffmpeg-layer.zip")
	}
	orch := get(res, "OrchestratorFunction", "Properties")
	if get(orch, "FunctionUrlConfig", "AuthType") != "AWS_IAM" {
		t.Error("the Function URL is not IAM-authenticated")
	}
	s3 := get(orch, "Events", "JobUploaded", "Properties")
	rules := get(s3, "Filter", "S3Key", "Rules").([]any)
	var filter []string
	for _, r := range rules {
		filter = append(filter, get(r, "Name").(string)+"="+get(r, "Value").(string))
	}
	if get(s3, "Events") != "s3:ObjectCreated:*" || !slices.Equal(filter, []string{"prefix=jobs/", "suffix=.json"}) {
		t.Errorf("S3 event = %v %v; want ObjectCreated on jobs/*.json only (renders/ must not trigger)", get(s3, "Events"), filter)
	}
	env := get(orch, "Environment", "Variables").(map[string]any)
	if env[config.EnvAdapter] != config.AdapterLambda || env[config.EnvWorkerFunction] != "WorkerFunction" || env[config.EnvStitcherFunction] != "StitcherFunction" {
		t.Errorf("orchestrator environment = %v", env)
	}

	// Every variable the template sets is one the functions read.
	for _, vars := range []any{get(fn, "Environment", "Variables"), env} {
		for name := range vars.(map[string]any) {
			if !slices.Contains(config.Names, name) {
				t.Errorf("template sets %s, which pkg/config does not read", name)
			}
		}
	}
	// No wildcard actions or resources in what is allowed.
	for logical, r := range res {
		walkStatements(get(r, "Properties"), func(st map[string]any) {
			if st["Effect"] != "Allow" {
				return
			}
			for _, a := range toStrings(st["Action"]) {
				if a == "*" || strings.HasSuffix(a, ":*") {
					t.Errorf("%s allows action %s", logical, a)
				}
			}
			for _, r := range toStrings(st["Resource"]) {
				if r == "*" {
					t.Errorf("%s allows resource *", logical)
				}
			}
		})
	}
}

func walkStatements(v any, f func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		if st, ok := x["Statement"].([]any); ok {
			for _, s := range st {
				if m, ok := s.(map[string]any); ok {
					f(m)
				}
			}
		}
		for _, c := range x {
			walkStatements(c, f)
		}
	case []any:
		for _, c := range x {
			walkStatements(c, f)
		}
	}
}

func toStrings(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
