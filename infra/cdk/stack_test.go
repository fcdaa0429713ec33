package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/layout"
)

// synth builds the stack with stand-in asset zips and returns its template.
func synth(t *testing.T, edit func(*Settings)) (assertions.Template, map[string]any) {
	t.Helper()
	dir := t.TempDir()
	s := DefaultSettings()
	s.LambdaDir = filepath.Join(dir, "lambda")
	s.LayerZip = filepath.Join(dir, "ffmpeg-layer.zip")
	os.MkdirAll(s.LambdaDir, 0o755)
	for _, f := range []string{"orchestrator.zip", "worker.zip", "stitcher.zip"} {
		os.WriteFile(filepath.Join(s.LambdaDir, f), []byte("PK\x05\x06"+strings.Repeat("\x00", 18)), 0o644)
	}
	os.WriteFile(s.LayerZip, []byte("PK\x05\x06"+strings.Repeat("\x00", 18)), 0o644)
	// A stand-in build context for the browser worker's image: synth stages
	// it, cdk deploy would build it.
	s.SourceDir = filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(s.SourceDir, filepath.Dir(BrowserWorkerDockerfile)), 0o755)
	os.WriteFile(filepath.Join(s.SourceDir, BrowserWorkerDockerfile), []byte("FROM scratch\n"), 0o644)
	ignore, err := os.ReadFile(filepath.Join("..", "..", BrowserWorkerDockerfile+".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(s.SourceDir, BrowserWorkerDockerfile+".dockerignore"), ignore, 0o644)
	for _, f := range []string{"go.mod", "pkg/job/spec.go", "renderers/helios/helios.mjs", "renderers/helios/node_modules/x/index.js", "renderers/helios/.browser/chromium", "out/demo.mp4", "helios"} {
		os.MkdirAll(filepath.Join(s.SourceDir, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(s.SourceDir, f), []byte("x"), 0o644)
	}
	if edit != nil {
		edit(&s)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(filepath.Join(dir, "cdk.out"))})
	stack := NewHeliosRenderStack(app, s)
	tpl := assertions.Template_FromStack(stack, nil)
	// A warning at synth is something `make synth` would print to the user
	// (such as a metric-math expression the CDK cannot read): none may be.
	for _, w := range *assertions.Annotations_FromStack(stack).FindWarning(jsii.String("*"), assertions.Match_AnyValue()) {
		t.Errorf("synth warning at %s: %v", *w.Id, w.Entry.Data)
	}
	var doc map[string]any
	data, _ := json.Marshal(tpl.ToJSON())
	json.Unmarshal(data, &doc)
	return tpl, doc
}

func resources(doc map[string]any, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range doc["Resources"].(map[string]any) {
		m := r.(map[string]any)
		if m["Type"] == typ {
			props, _ := m["Properties"].(map[string]any)
			out[id] = props
		}
	}
	return out
}

func functionByHandlerName(t *testing.T, doc map[string]any, name string) (string, map[string]any) {
	t.Helper()
	for id, props := range resources(doc, "AWS::Lambda::Function") {
		if strings.HasPrefix(id, name) {
			return id, props
		}
	}
	t.Fatalf("no function %s", name)
	return "", nil
}

func TestStackShape(t *testing.T) {
	tpl, doc := synth(t, nil)
	for typ, n := range map[string]float64{
		"AWS::Lambda::Function":          4, // no custom-resource helpers: notifications are native
		"AWS::Lambda::LayerVersion":      1,
		"AWS::S3::Bucket":                1,
		"AWS::S3::BucketPolicy":          1,
		"AWS::Lambda::Url":               1,
		"AWS::Lambda::Permission":        1, // S3's; the sweep schedule invokes through its own role
		"AWS::CloudWatch::Alarm":         7,
		"AWS::Logs::LogGroup":            4,
		"AWS::SQS::Queue":                2, // the orchestrator's on-failure queue, the sweep's dead letters
		"AWS::Scheduler::Schedule":       1,
		"AWS::Lambda::EventInvokeConfig": 1,
	} {
		tpl.ResourceCountIs(jsii.String(typ), jsii.Number(n))
	}
	for id, props := range resources(doc, "AWS::Lambda::Function") {
		if strings.HasPrefix(id, "BrowserWorkerFunction") {
			continue // a container image (TestBrowserWorker)
		}
		if props["Runtime"] != "provided.al2023" || props["Handler"] != "bootstrap" || !slices.Equal(strs(props["Architectures"]), []string{"arm64"}) {
			t.Errorf("%s: runtime %v handler %v architectures %v", id, props["Runtime"], props["Handler"], props["Architectures"])
		}
	}
	layerID := ""
	for id := range resources(doc, "AWS::Lambda::LayerVersion") {
		layerID = id
	}
	for _, name := range []string{"WorkerFunction", "StitcherFunction"} {
		_, props := functionByHandlerName(t, doc, name)
		layers, _ := json.Marshal(props["Layers"])
		if !strings.Contains(string(layers), layerID) {
			t.Errorf("%s does not use the ffmpeg layer: %s", name, layers)
		}
		if mb := props["EphemeralStorage"].(map[string]any)["Size"].(float64); mb < 4096 {
			t.Errorf("%s has %v MB of /tmp", name, mb)
		}
	}
	_, worker := functionByHandlerName(t, doc, "WorkerFunction")
	if worker["ReservedConcurrentExecutions"] != float64(50) || worker["MemorySize"] != float64(3008) || worker["Timeout"] != float64(900) {
		t.Errorf("worker sizing: %v %v %v", worker["ReservedConcurrentExecutions"], worker["MemorySize"], worker["Timeout"])
	}
	_, orch := functionByHandlerName(t, doc, "OrchestratorFunction")
	if orch["Layers"] != nil {
		t.Error("the orchestrator does not need ffmpeg")
	}
}

// The browser worker is an x86_64 container image sized for a Chromium
// render, allowed to run helios; the orchestrator routes helios chunks to
// it and may invoke it. Without it the stack is the three zip functions.
func TestBrowserWorker(t *testing.T) {
	tpl, doc := synth(t, nil)
	id, browser := functionByHandlerName(t, doc, "BrowserWorkerFunction")
	code, _ := browser["Code"].(map[string]any)
	if browser["PackageType"] != "Image" || code["ImageUri"] == nil || !slices.Equal(strs(browser["Architectures"]), []string{"x86_64"}) {
		t.Errorf("browser worker: package %v code %v architectures %v; want an x86_64 image", browser["PackageType"], code, browser["Architectures"])
	}
	if browser["MemorySize"] != float64(3008) || browser["Timeout"] != float64(900) || browser["ReservedConcurrentExecutions"] != float64(50) ||
		browser["EphemeralStorage"].(map[string]any)["Size"] != float64(2048) {
		t.Errorf("browser worker sizing: memory %v timeout %v reserved %v storage %v", browser["MemorySize"], browser["Timeout"], browser["ReservedConcurrentExecutions"], browser["EphemeralStorage"])
	}
	env := browser["Environment"].(map[string]any)["Variables"].(map[string]any)
	if env[config.EnvAllowedCommands] != "ffmpeg,helios" {
		t.Errorf("browser worker allows %v", env[config.EnvAllowedCommands])
	}
	_, orch := functionByHandlerName(t, doc, "OrchestratorFunction")
	oenv := orch["Environment"].(map[string]any)["Variables"].(map[string]any)
	ref, _ := json.Marshal(oenv[config.EnvBrowserWorkerFunction])
	if !strings.Contains(string(ref), id) || oenv[config.EnvAllowedCommands] != "ffmpeg,helios" {
		t.Errorf("orchestrator: %s=%s, %s=%v", config.EnvBrowserWorkerFunction, ref, config.EnvAllowedCommands, oenv[config.EnvAllowedCommands])
	}
	_, worker := functionByHandlerName(t, doc, "WorkerFunction")
	if wenv := worker["Environment"].(map[string]any)["Variables"].(map[string]any); wenv[config.EnvAllowedCommands] != "ffmpeg" {
		t.Errorf("the arm64 worker allows %v; want ffmpeg only", wenv[config.EnvAllowedCommands])
	}
	invokes := false
	for pid, props := range resources(doc, "AWS::IAM::Policy") {
		text, _ := json.Marshal(props["PolicyDocument"])
		if strings.HasPrefix(pid, "OrchestratorFunction") && strings.Contains(string(text), "lambda:InvokeFunction") && strings.Contains(string(text), id) {
			invokes = true
		}
		// (TestLeastPrivilege checks its grants are exactly the worker's.)
		if strings.HasPrefix(pid, "BrowserWorkerFunction") && strings.Contains(string(text), "lambda:") {
			t.Errorf("the browser worker may do more than a worker: %s", text)
		}
	}
	if !invokes {
		t.Error("the orchestrator may not invoke the browser worker")
	}
	tpl.HasOutput(jsii.String("BrowserWorkerFunctionName"), map[string]any{})
	// The image's build context, as synth stages it: the sources, not the
	// renderer's installed packages and browser, not build outputs.
	staged, _ := filepath.Glob(filepath.Join(filepath.Dir(t.TempDir()), "*", "cdk.out", "asset.*", "go.mod"))
	if len(staged) != 1 {
		t.Fatalf("staged build contexts: %v", staged)
	}
	var files []string
	ctx := filepath.Dir(staged[0])
	filepath.WalkDir(ctx, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(ctx, p)
			files = append(files, rel)
		}
		return nil
	})
	slices.Sort(files)
	if want := []string{"go.mod", "infra/browser-worker/Dockerfile", "pkg/job/spec.go", "renderers/helios/helios.mjs"}; !slices.Equal(files, want) {
		t.Errorf("the image's build context holds %v, want %v", files, want)
	}

	// The origins pages may load from go to both workers, and nowhere else.
	_, doc = synth(t, func(s *Settings) { s.RenderOrigins = "https://fonts.googleapis.com,https://fonts.gstatic.com" })
	for _, name := range []string{"WorkerFunction", "BrowserWorkerFunction", "OrchestratorFunction", "StitcherFunction"} {
		_, f := functionByHandlerName(t, doc, name)
		got := f["Environment"].(map[string]any)["Variables"].(map[string]any)[config.EnvRenderOrigins]
		if want := strings.HasSuffix(name, "WorkerFunction"); (got == "https://fonts.googleapis.com,https://fonts.gstatic.com") != want {
			t.Errorf("%s has %s=%v", name, config.EnvRenderOrigins, got)
		}
	}

	tpl, doc = synth(t, func(s *Settings) { s.BrowserWorker = false })
	tpl.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(3))
	_, orch = functionByHandlerName(t, doc, "OrchestratorFunction")
	oenv = orch["Environment"].(map[string]any)["Variables"].(map[string]any)
	if oenv[config.EnvBrowserWorkerFunction] != nil || oenv[config.EnvAllowedCommands] != "ffmpeg" {
		t.Errorf("without a browser worker the orchestrator has %v and allows %v", oenv[config.EnvBrowserWorkerFunction], oenv[config.EnvAllowedCommands])
	}
}

// The dashboard graphs the metrics the orchestrator logs in Embedded
// Metric Format: each one of pkg/metrics' names, in its namespace.
func TestJobsDashboard(t *testing.T) {
	_, doc := synth(t, nil)
	boards := resources(doc, "AWS::CloudWatch::Dashboard")
	if len(boards) != 1 {
		t.Fatalf("%d dashboards", len(boards))
	}
	for _, props := range boards {
		body, _ := json.Marshal(props["DashboardBody"])
		for _, name := range []string{"JobDuration", "Chunks", "Retries", "Hedges", "WorkerSeconds", "EstimatedCostUSD", `\"Helios\"`} {
			if !strings.Contains(string(body), name) {
				t.Errorf("the dashboard does not show %s", name)
			}
		}
	}
}

func TestNotificationOnlyForJobs(t *testing.T) {
	_, doc := synth(t, nil)
	for _, props := range resources(doc, "AWS::S3::Bucket") {
		cfgs := props["NotificationConfiguration"].(map[string]any)["LambdaConfigurations"].([]any)
		if len(cfgs) != 1 {
			t.Fatalf("%d notifications", len(cfgs))
		}
		c := cfgs[0].(map[string]any)
		rules := c["Filter"].(map[string]any)["S3Key"].(map[string]any)["Rules"].([]any)
		var got []string
		for _, r := range rules {
			m := r.(map[string]any)
			got = append(got, m["Name"].(string)+"="+m["Value"].(string))
		}
		fn, _ := json.Marshal(c["Function"])
		if c["Event"] != "s3:ObjectCreated:*" || !slices.Equal(got, []string{"prefix=jobs/", "suffix=.json"}) || !strings.Contains(string(fn), "OrchestratorFunction") {
			t.Errorf("notification = %v %v %s", c["Event"], got, fn)
		}
	}
	// The bucket is created after S3 may invoke the orchestrator, or S3
	// refuses the notification.
	for id, r := range doc["Resources"].(map[string]any) {
		m := r.(map[string]any)
		if m["Type"] == "AWS::S3::Bucket" && !slices.Contains(strs(m["DependsOn"]), "JobUploadInvokePermission") {
			t.Errorf("%s does not depend on the invoke permission: %v", id, m["DependsOn"])
		}
	}
	for _, p := range resources(doc, "AWS::Lambda::Permission") {
		if p["Principal"] != "s3.amazonaws.com" || p["SourceAccount"] == nil || p["SourceArn"] == nil {
			t.Errorf("invoke permission for S3 is not scoped to this bucket and account: %v", p)
		}
	}
}

func TestFunctionURLUsesIAM(t *testing.T) {
	tpl, _ := synth(t, nil)
	tpl.HasResourceProperties(jsii.String("AWS::Lambda::Url"), map[string]any{"AuthType": "AWS_IAM"})
}

func TestBucketIsLockedDown(t *testing.T) {
	tpl, doc := synth(t, nil)
	tpl.HasResourceProperties(jsii.String("AWS::S3::Bucket"), map[string]any{
		"PublicAccessBlockConfiguration": map[string]any{
			"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
		},
		"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{
			map[string]any{"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "AES256"}},
		}},
	})
	// SSL only.
	found := false
	for _, p := range resources(doc, "AWS::S3::BucketPolicy") {
		for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			m := st.(map[string]any)
			cond, _ := json.Marshal(m["Condition"])
			if m["Effect"] == "Deny" && strings.Contains(string(cond), `"aws:SecureTransport":"false"`) {
				found = true
			}
		}
	}
	if !found {
		t.Error("no statement denies requests without TLS")
	}
	// Leftover segments expire by tag (S3 rules cannot match renders/*/chunks/).
	for _, p := range resources(doc, "AWS::S3::Bucket") {
		rules, _ := json.Marshal(p["LifecycleConfiguration"])
		if !strings.Contains(string(rules), `"ExpirationInDays":7`) || !strings.Contains(string(rules), `"TagFilters":[{"Key":"helios-kind","Value":"segment"}]`) {
			t.Errorf("lifecycle rules = %s", rules)
		}
	}
	// Kept by default.
	for id, r := range doc["Resources"].(map[string]any) {
		if r.(map[string]any)["Type"] == "AWS::S3::Bucket" && r.(map[string]any)["DeletionPolicy"] != "Retain" {
			t.Errorf("%s is deleted with the stack by default", id)
		}
	}
}

func TestLeastPrivilege(t *testing.T) {
	_, doc := synth(t, nil)
	perRole := map[string][]map[string]any{}
	for _, p := range resources(doc, "AWS::IAM::Policy") {
		roles, _ := json.Marshal(p["Roles"])
		for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			perRole[string(roles)] = append(perRole[string(roles)], st.(map[string]any))
		}
	}
	if len(perRole) != 4 {
		t.Fatalf("%d roles with inline policies, want 4", len(perRole))
	}
	for role, statements := range perRole {
		for _, st := range statements {
			for _, a := range strs(st["Action"]) {
				if a == "*" || strings.HasSuffix(a, ":*") {
					t.Errorf("%s: wildcard action %s", role, a)
				}
			}
			res, _ := json.Marshal(st["Resource"])
			if string(res) == `"*"` || strings.Contains(string(res), `"*"`) {
				t.Errorf("%s: resource * for %v", role, st["Action"])
			}
		}
	}
	// What each function may do, in the order the stack grants it.
	types := resourceTypes(doc)
	want := map[string][]string{
		"OrchestratorFunction": {"s3:DeleteObject,s3:GetObject,s3:PutObject on active/*,jobs/*,renders/*", "s3:GetObject on outputs/*", "s3:ListBucket on bucket", "lambda:InvokeFunction on 3 functions,itself",
			"sqs:GetQueueAttributes,sqs:GetQueueUrl,sqs:SendMessage on queue OrchestratorFailureQueue"},
		"WorkerFunction":        {"s3:GetObject on assets/*,renders/*/chunks/*", "s3:AbortMultipartUpload,s3:DeleteObject,s3:PutObject,s3:PutObjectTagging on renders/*/chunks/*", "s3:ListBucket on bucket"},
		"BrowserWorkerFunction": {"s3:GetObject on assets/*,renders/*/chunks/*", "s3:AbortMultipartUpload,s3:DeleteObject,s3:PutObject,s3:PutObjectTagging on renders/*/chunks/*", "s3:ListBucket on bucket"},
		"StitcherFunction":      {"s3:GetObject on renders/*/chunks/*", "s3:AbortMultipartUpload,s3:PutObject on outputs/*,renders/*", "s3:DeleteObject on outputs/*.tmp,renders/*.tmp", "s3:ListBucket on bucket"},
	}
	for fn, grants := range want {
		var got []string
		for role, statements := range perRole {
			if !strings.Contains(role, `"`+fn) { // WorkerFunction, not BrowserWorkerFunction
				continue
			}
			for _, st := range statements {
				got = append(got, describe(st, types))
			}
		}
		slices.Sort(got)
		slices.Sort(grants)
		if !slices.Equal(got, grants) {
			t.Errorf("%s may:\n  %s\nwant:\n  %s", fn, strings.Join(got, "\n  "), strings.Join(grants, "\n  "))
		}
	}
}

// describe summarises a statement as "actions on resources", with object
// ARNs reduced to their key pattern and references to the stack's resources
// by type (types: logical ID to resource type).
func describe(st map[string]any, types map[string]string) string {
	actions := strs(st["Action"])
	slices.Sort(actions)
	var res []string
	list, ok := st["Resource"].([]any)
	if !ok {
		list = []any{st["Resource"]}
	}
	functions := 0
	for _, r := range list {
		b, _ := json.Marshal(r)
		s := string(b)
		ref := getAtt(r)
		switch {
		case types[ref] == "AWS::Lambda::Function":
			functions++
		case types[ref] == "AWS::SQS::Queue":
			res = append(res, "queue "+strings.TrimRight(ref, "0123456789ABCDEF"))
		case ref != "":
			res = append(res, types[ref]+" "+ref)
		case strings.Contains(s, ":function:"):
			res = append(res, "itself")
		case strings.Contains(s, `"/`):
			i := strings.LastIndex(s, `"/`)
			res = append(res, strings.Trim(s[i+2:], `"]}`))
		default:
			res = append(res, "bucket")
		}
	}
	if functions > 0 {
		res = append(res, strconv.Itoa(functions)+" functions")
	}
	slices.Sort(res)
	return strings.Join(actions, ",") + " on " + strings.Join(res, ",")
}

// The environment the stack sets is exactly what the functions read: one
// list of names, pkg/config's.
func TestEnvironmentMatchesConfig(t *testing.T) {
	_, doc := synth(t, nil)
	for id, props := range resources(doc, "AWS::Lambda::Function") {
		vars := props["Environment"].(map[string]any)["Variables"].(map[string]any)
		for name := range vars {
			if !slices.Contains(config.Names, name) {
				t.Errorf("%s sets %s, which the functions do not read", id, name)
			}
		}
		if _, ok := vars[config.EnvStorageURL]; !ok {
			t.Errorf("%s lacks %s", id, config.EnvStorageURL)
		}
	}
	_, orch := functionByHandlerName(t, doc, "OrchestratorFunction")
	vars := orch["Environment"].(map[string]any)["Variables"].(map[string]any)
	for _, name := range []string{config.EnvAdapter, config.EnvWorkerFunction, config.EnvStitcherFunction, config.EnvConcurrency, config.EnvAllowedCommands} {
		if vars[name] == nil {
			t.Errorf("orchestrator lacks %s", name)
		}
	}
	if want := `{"browserWorker":{"memoryMb":3008,"arch":"x86_64"},"orchestrator":{"memoryMb":512,"arch":"arm64"},` +
		`"stitcher":{"memoryMb":3008,"arch":"arm64"},"worker":{"memoryMb":3008,"arch":"arm64"}}`; vars[config.EnvSizes] != want {
		t.Errorf("%s = %v, want %s", config.EnvSizes, vars[config.EnvSizes], want)
	}
	if vars[config.EnvAdapter] != config.AdapterLambda || vars[config.EnvConcurrency] != "50" {
		t.Errorf("orchestrator adapter %v concurrency %v", vars[config.EnvAdapter], vars[config.EnvConcurrency])
	}
	if _, err := config.FromEnv(func(k string) string {
		if v, ok := vars[k].(string); ok {
			return v
		}
		if vars[k] != nil {
			return "resolved-at-deploy" // a reference: a function name
		}
		return ""
	}); err != nil {
		t.Errorf("the orchestrator's environment does not parse: %v", err)
	}
}

func TestSettingsFromContext(t *testing.T) {
	tpl, doc := synth(t, func(s *Settings) {
		s.WorkerMemory, s.WorkerConcurrency, s.ChunkExpiryDays, s.OutputExpiryDays, s.RemovalPolicy = 2048, 7, 3, 30, "destroy"
	})
	_, worker := functionByHandlerName(t, doc, "WorkerFunction")
	if worker["MemorySize"] != float64(2048) || worker["ReservedConcurrentExecutions"] != float64(7) {
		t.Errorf("worker = %v MB, %v reserved", worker["MemorySize"], worker["ReservedConcurrentExecutions"])
	}
	tpl.HasResource(jsii.String("AWS::S3::Bucket"), map[string]any{"DeletionPolicy": "Delete"})
	for _, p := range resources(doc, "AWS::S3::Bucket") {
		rules, _ := json.Marshal(p["LifecycleConfiguration"])
		if !strings.Contains(string(rules), `"ExpirationInDays":3`) || !strings.Contains(string(rules), `"Prefix":"outputs/"`) {
			t.Errorf("lifecycle rules = %s", rules)
		}
	}

	app := awscdk.NewApp(&awscdk.AppProps{Context: &map[string]any{"workerMemory": "lots", "removalPolicy": "keep"}})
	if _, err := settingsFromContext(app); err == nil || !strings.Contains(err.Error(), "workerMemory=lots") {
		t.Errorf("bad context: %v", err)
	}
	bad := DefaultSettings()
	bad.WorkerMemory, bad.RemovalPolicy, bad.BucketPrefix, bad.LogRetentionDays = 64, "keep", "Helios_Renders", 2
	bad.RenderOrigins = "https://fonts.gstatic.com,fonts.googleapis.com"
	err := bad.Validate()
	for _, want := range []string{"workerMemory=64", "removalPolicy=keep", "bucketPrefix=Helios_Renders", "logRetentionDays=2", `origin "fonts.googleapis.com"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to name %s", err, want)
		}
	}
}

func strs(v any) []string {
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

// resourceTypes maps the template's logical IDs to resource types.
func resourceTypes(doc map[string]any) map[string]string {
	types := map[string]string{}
	for id, r := range doc["Resources"].(map[string]any) {
		types[id], _ = r.(map[string]any)["Type"].(string)
	}
	return types
}

// getAtt returns the logical ID of {"Fn::GetAtt": [id, "Arn"]}, else "".
func getAtt(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	args, ok := m["Fn::GetAtt"].([]any)
	if !ok || len(args) != 2 || args[1] != "Arn" {
		return ""
	}
	id, _ := args[0].(string)
	return id
}

// logicalID returns the one resource of a type whose ID starts with prefix.
func logicalID(t *testing.T, doc map[string]any, typ, prefix string) string {
	t.Helper()
	var ids []string
	for id := range resources(doc, typ) {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%s %s*: %v, want one", typ, prefix, ids)
	}
	return ids[0]
}

// objectPatterns returns, per function, the S3 object key patterns its
// policy grants each action on.
func objectPatterns(doc map[string]any) map[string]map[string][]string {
	out := map[string]map[string][]string{}
	for _, p := range resources(doc, "AWS::IAM::Policy") {
		roles, _ := json.Marshal(p["Roles"])
		fn := ""
		for _, name := range []string{"OrchestratorFunction", "WorkerFunction", "StitcherFunction"} {
			if strings.Contains(string(roles), name) {
				fn = name
			}
		}
		for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			m := st.(map[string]any)
			list, ok := m["Resource"].([]any)
			if !ok {
				list = []any{m["Resource"]}
			}
			for _, r := range list {
				b, _ := json.Marshal(r)
				s := string(b)
				i := strings.LastIndex(s, `"/`)
				if !strings.Contains(s, ":s3:::") || i < 0 {
					continue
				}
				pattern := strings.Trim(s[i+2:], `"]}`)
				for _, a := range strs(m["Action"]) {
					if out[fn] == nil {
						out[fn] = map[string][]string{}
					}
					out[fn][a] = append(out[fn][a], pattern)
				}
			}
		}
	}
	return out
}

// s3Match matches a key against an IAM resource pattern: * matches any
// run of characters, / included.
func s3Match(pattern, key string) bool {
	re := "^" + strings.ReplaceAll(regexp.QuoteMeta(pattern), `\*`, ".*") + "$"
	return regexp.MustCompile(re).MatchString(key)
}

// Only the orchestrator reaches active/ (one object per running job, which
// it creates, rewrites and deletes, and the sweep reads).
func TestActivePrefixIsTheOrchestrators(t *testing.T) {
	_, doc := synth(t, nil)
	patterns := objectPatterns(doc)
	key := layout.ActiveKey("demo")
	can := func(fn, action string) bool {
		for _, p := range patterns[fn][action] {
			if s3Match(p, key) {
				return true
			}
		}
		return false
	}
	for _, action := range []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"} {
		if !can("OrchestratorFunction", action) {
			t.Errorf("the orchestrator lacks %s on %s", action, key)
		}
	}
	for _, fn := range []string{"WorkerFunction", "StitcherFunction"} {
		for action := range patterns[fn] {
			if can(fn, action) {
				t.Errorf("%s may %s %s: only the orchestrator uses active/", fn, action, key)
			}
		}
	}
	// The patterns are real: the orchestrator's own objects match, a
	// neighbour's do not.
	if !s3Match("renders/*/chunks/*", layout.MarkerKey("demo", 0)) || s3Match("active/*", layout.JobKey("demo")) {
		t.Error("s3Match is wrong")
	}
}

// The sweep: EventBridge Scheduler invokes the orchestrator with
// {"sweep": {}} every 5 minutes, through a role that can do nothing else.
func TestSweepSchedule(t *testing.T) {
	_, doc := synth(t, nil)
	types := resourceTypes(doc)
	orch, _ := functionByHandlerName(t, doc, "OrchestratorFunction")
	schedules := resources(doc, "AWS::Scheduler::Schedule")
	if len(schedules) != 1 {
		t.Fatalf("%d schedules, want 1", len(schedules))
	}
	for id, p := range schedules {
		if p["ScheduleExpression"] != "rate(5 minutes)" || p["State"] != "ENABLED" {
			t.Errorf("%s: expression %v, state %v; want rate(5 minutes), ENABLED", id, p["ScheduleExpression"], p["State"])
		}
		if w, _ := p["FlexibleTimeWindow"].(map[string]any); w["Mode"] != "OFF" {
			t.Errorf("%s: flexible time window %v, want OFF", id, w)
		}
		target := p["Target"].(map[string]any)
		if getAtt(target["Arn"]) != orch {
			t.Errorf("%s: target %v, want the orchestrator %s", id, target["Arn"], orch)
		}
		var input, want any
		json.Unmarshal([]byte(`{"sweep":{}}`), &want)
		if s, _ := target["Input"].(string); json.Unmarshal([]byte(s), &input) != nil || !reflect.DeepEqual(input, want) {
			t.Errorf("%s: input %v, want {\"sweep\":{}}", id, target["Input"])
		}
		retry, _ := target["RetryPolicy"].(map[string]any)
		if n, _ := retry["MaximumRetryAttempts"].(float64); n < 1 || retry["MaximumEventAgeInSeconds"] == nil {
			t.Errorf("%s: retry policy %v", id, retry)
		}
		dlq := getAtt(get(target, "DeadLetterConfig", "Arn"))
		if types[dlq] != "AWS::SQS::Queue" {
			t.Fatalf("%s: dead-letter config %v, want a queue of the stack", id, target["DeadLetterConfig"])
		}
		checkQueue(t, doc, dlq)

		// The schedule's role: assumed by EventBridge Scheduler for this
		// account only; it invokes the orchestrator and sends dead letters,
		// nothing more.
		role := getAtt(target["RoleArn"])
		if types[role] != "AWS::IAM::Role" {
			t.Fatalf("%s: role %v", id, target["RoleArn"])
		}
		rp := resources(doc, "AWS::IAM::Role")[role]
		trust, _ := json.Marshal(rp["AssumeRolePolicyDocument"])
		if !strings.Contains(string(trust), `"Principal":{"Service":"scheduler.amazonaws.com"}`) || !strings.Contains(string(trust), `"aws:SourceAccount"`) ||
			strings.Count(string(trust), `"Principal"`) != 1 {
			t.Errorf("%s trusts %s, want scheduler.amazonaws.com for this account only", role, trust)
		}
		if rp["ManagedPolicyArns"] != nil {
			t.Errorf("%s has managed policies %v", role, rp["ManagedPolicyArns"])
		}
		for pid, p := range resources(doc, "AWS::IAM::Policy") {
			if roles, _ := json.Marshal(p["Roles"]); strings.Contains(string(roles), `"`+role+`"`) {
				t.Errorf("%s is attached to %s: its only policy is inline", pid, role)
			}
		}
		var got []string
		for _, policy := range rp["Policies"].([]any) {
			for _, st := range get(policy, "PolicyDocument", "Statement").([]any) {
				m := st.(map[string]any)
				if m["Effect"] != "Allow" || m["Condition"] != nil || m["NotAction"] != nil || m["NotResource"] != nil {
					t.Errorf("%s: statement %v", role, m)
				}
				got = append(got, describe(m, types))
			}
		}
		slices.Sort(got)
		grants := []string{"lambda:InvokeFunction on 1 functions", "sqs:SendMessage on queue SweepDeadLetterQueue"}
		if !slices.Equal(got, grants) {
			t.Errorf("%s may:\n  %s\nwant:\n  %s", role, strings.Join(got, "\n  "), strings.Join(grants, "\n  "))
		}
		for _, policy := range rp["Policies"].([]any) {
			for _, st := range get(policy, "PolicyDocument", "Statement").([]any) {
				m := st.(map[string]any)
				if strs(m["Action"])[0] == "lambda:InvokeFunction" && getAtt(m["Resource"]) != orch {
					t.Errorf("%s invokes %v, want only the orchestrator %s", role, m["Resource"], orch)
				}
				if strs(m["Action"])[0] == "sqs:SendMessage" && getAtt(m["Resource"]) != dlq {
					t.Errorf("%s sends to %v, want only the schedule's dead-letter queue %s", role, m["Resource"], dlq)
				}
			}
		}
	}
}

// Asynchronous invocations of the orchestrator that fail after Lambda's
// retries go to a queue, and an alarm says so.
func TestOrchestratorOnFailureQueue(t *testing.T) {
	topic := "arn:aws:sns:us-east-1:123456789012:helios-alarms"
	_, doc := synth(t, func(s *Settings) { s.AlarmTopicArn = topic })
	orch, _ := functionByHandlerName(t, doc, "OrchestratorFunction")
	configs := resources(doc, "AWS::Lambda::EventInvokeConfig")
	if len(configs) != 1 {
		t.Fatalf("%d EventInvokeConfigs, want 1 (the orchestrator's)", len(configs))
	}
	var queue string
	for id, p := range configs {
		if fn, _ := json.Marshal(p["FunctionName"]); string(fn) != `{"Ref":"`+orch+`"}` {
			t.Errorf("%s: function %s, want the orchestrator", id, fn)
		}
		if p["MaximumRetryAttempts"] != float64(2) || get(p, "DestinationConfig", "OnSuccess") != nil {
			t.Errorf("%s: retries %v, destinations %v", id, p["MaximumRetryAttempts"], p["DestinationConfig"])
		}
		queue = getAtt(get(p, "DestinationConfig", "OnFailure", "Destination"))
	}
	if queue != logicalID(t, doc, "AWS::SQS::Queue", "OrchestratorFailureQueue") {
		t.Fatalf("on failure: %v, want the orchestrator's failure queue", queue)
	}
	checkQueue(t, doc, queue)
	if name := resources(doc, "AWS::SQS::Queue")[queue]["QueueName"]; name != "HeliosRenderStack-orchestrator-failures" {
		t.Errorf("queue name %v", name)
	}

	// The orchestrator may send to it (Lambda sends as the function's role).
	sends := false
	for _, p := range resources(doc, "AWS::IAM::Policy") {
		if roles, _ := json.Marshal(p["Roles"]); !strings.Contains(string(roles), "OrchestratorFunction") {
			continue
		}
		for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			m := st.(map[string]any)
			if slices.Contains(strs(m["Action"]), "sqs:SendMessage") && getAtt(m["Resource"]) == queue {
				sends = true
			}
		}
	}
	if !sends {
		t.Error("the orchestrator's role may not send to its failure queue")
	}

	// An alarm as soon as a message is visible, notifying the topic (as
	// every alarm of the stack does when alarmTopicArn is set).
	found := false
	for id, a := range resources(doc, "AWS::CloudWatch::Alarm") {
		if actions := strs(a["AlarmActions"]); !slices.Equal(actions, []string{topic}) {
			t.Errorf("%s notifies %v, want %s", id, a["AlarmActions"], topic)
		}
		dims, _ := json.Marshal(a["Dimensions"])
		if !strings.Contains(string(dims), `{"Fn::GetAtt":["`+queue+`","QueueName"]}`) {
			continue
		}
		found = true
		if a["Namespace"] != "AWS/SQS" || a["MetricName"] != "ApproximateNumberOfMessagesVisible" || a["Threshold"] != float64(1) ||
			a["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || a["EvaluationPeriods"] != float64(1) {
			t.Errorf("%s: %v", id, a)
		}
	}
	if !found {
		t.Error("no alarm on the orchestrator's failure queue")
	}
}

// checkQueue: encrypted at rest, messages kept for 14 days.
func checkQueue(t *testing.T, doc map[string]any, id string) {
	t.Helper()
	q := resources(doc, "AWS::SQS::Queue")[id]
	if q["SqsManagedSseEnabled"] != true || q["MessageRetentionPeriod"] != float64(14*24*3600) {
		t.Errorf("%s: SSE %v, retention %v; want SSE and 14 days", id, q["SqsManagedSseEnabled"], q["MessageRetentionPeriod"])
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

// The spend alarm prices both workers' billed duration and invocations at
// the table's list prices, as USD an hour, against the threshold.
func TestWorkerSpendAlarm(t *testing.T) {
	_, doc := synth(t, func(s *Settings) { s.WorkerSpendAlarm = 25 })
	var alarm map[string]any
	for id, a := range resources(doc, "AWS::CloudWatch::Alarm") {
		if strings.HasPrefix(id, "WorkerSpendAlarm") {
			alarm = a
		}
	}
	if alarm == nil {
		t.Fatal("no WorkerSpendAlarm")
	}
	if alarm["Threshold"] != float64(25) || alarm["ComparisonOperator"] != "GreaterThanThreshold" {
		t.Errorf("threshold %v, %v", alarm["Threshold"], alarm["ComparisonOperator"])
	}
	var expr string
	metrics := map[string]string{}
	for _, m := range alarm["Metrics"].([]any) {
		m := m.(map[string]any)
		if e, ok := m["Expression"].(string); ok {
			expr = e
			continue
		}
		stat := m["MetricStat"].(map[string]any)
		metrics[m["Id"].(string)] = stat["Metric"].(map[string]any)["MetricName"].(string) + "/" + stat["Stat"].(string)
	}
	// 3,008 MB: arm64 for the worker, x86_64 for the browser worker, per ms.
	arm := 3008.0 / 1024 * 0.0000133334 / 1000
	x86 := 3008.0 / 1024 * 0.0000166667 / 1000
	dec := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	want := fmt.Sprintf("12*(d0*%s + n0*%s + d1*%s + n1*%s)", dec(arm), dec(0.2/1e6), dec(x86), dec(0.2/1e6))
	if expr != want {
		t.Errorf("expression %q, want %q", expr, want)
	}
	checkMetricMath(t, expr, metrics)
	if metrics["d0"] != "Duration/Sum" || metrics["n0"] != "Invocations/Sum" || metrics["d1"] != "Duration/Sum" {
		t.Errorf("metrics %v", metrics)
	}
	s := DefaultSettings()
	s.WorkerSpendAlarm = 0
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "workerSpendAlarm") {
		t.Errorf("a threshold of 0: %v", err)
	}
}

// checkMetricMath reads expr with CloudWatch metric math's grammar for
// arithmetic: metric IDs (a lowercase letter, then letters, digits or '_'),
// numbers written as digits with an optional fraction (no exponent: "3e-08"
// would be the number 3, the ID e and a minus), + - * / and parentheses.
func checkMetricMath(t *testing.T, expr string, ids map[string]string) {
	t.Helper()
	token := regexp.MustCompile(`^(?:\s+|[a-z][A-Za-z0-9_]*|[0-9]+(?:\.[0-9]+)?|[-+*/()])`)
	depth, rest := 0, expr
	prevOperand := false
	for rest != "" {
		tok := token.FindString(rest)
		if tok == "" {
			t.Fatalf("expression %q: cannot read %q", expr, rest)
		}
		rest = rest[len(tok):]
		switch c := tok[0]; {
		case c == ' ' || c == '\t':
			continue
		case c >= 'a' && c <= 'z':
			if _, ok := ids[tok]; !ok {
				t.Errorf("expression %q names %q, which is not one of its metrics %v", expr, tok, ids)
			}
			fallthrough
		case c >= '0' && c <= '9':
			if prevOperand {
				t.Errorf("expression %q: two operands in a row at %q", expr, tok)
			}
			prevOperand = true
		case c == '(':
			depth++
			prevOperand = false
		case c == ')':
			depth--
			prevOperand = true
		default:
			if !prevOperand {
				t.Errorf("expression %q: operator %q without an operand before it", expr, tok)
			}
			prevOperand = false
		}
	}
	if depth != 0 || !prevOperand {
		t.Errorf("expression %q: unbalanced or ends in an operator", expr)
	}
}

// With webhookSecretArn the orchestrator reads its webhook key from that
// secret, and may read that secret and no other; without it, neither.
func TestWebhookSecretFromSecretsManager(t *testing.T) {
	const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:helios-webhook-AbCdEf"
	for _, set := range []bool{false, true} {
		_, doc := synth(t, func(s *Settings) {
			if set {
				s.WebhookSecretArn = arn
			}
		})
		_, orch := functionByHandlerName(t, doc, "OrchestratorFunction")
		vars := orch["Environment"].(map[string]any)["Variables"].(map[string]any)
		if got, _ := vars[config.EnvWebhookSecretARN].(string); (got == arn) != set || vars[config.EnvWebhookSecret] != nil {
			t.Errorf("set=%v: %s=%v, %s=%v", set, config.EnvWebhookSecretARN, vars[config.EnvWebhookSecretARN], config.EnvWebhookSecret, vars[config.EnvWebhookSecret])
		}
		var grants []string
		for _, p := range resources(doc, "AWS::IAM::Policy") {
			for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				st := st.(map[string]any)
				if slices.Contains(strs(st["Action"]), "secretsmanager:GetSecretValue") {
					roles, _ := json.Marshal(p["Roles"])
					grants = append(grants, fmt.Sprintf("%s on %v", roles, st["Resource"]))
				}
			}
		}
		switch {
		case set && (len(grants) != 1 || !strings.Contains(grants[0], "Orchestrator") || !strings.Contains(grants[0], arn)):
			t.Errorf("GetSecretValue granted: %v; want the orchestrator's, on %s", grants, arn)
		case !set && len(grants) != 0:
			t.Errorf("GetSecretValue granted without a secret: %v", grants)
		}
	}
	s := DefaultSettings()
	s.WebhookSecretArn = "helios-webhook"
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "webhookSecretArn") {
		t.Errorf("a name, not an ARN: %v", err)
	}
}
