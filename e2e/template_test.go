package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/layout"
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
	res := get(tpl, "Resources").(map[string]any)
	for logical, zip := range map[string]string{
		"OrchestratorFunction": "build/lambda/orchestrator.zip",
		"WorkerFunction":       "build/lambda/worker.zip",
		"StitcherFunction":     "build/lambda/stitcher.zip",
	} {
		p := get(res, logical, "Properties")
		if got := get(p, "CodeUri"); got != zip {
			t.Errorf("%s CodeUri = %v, want %s (what make package writes)", logical, got, zip)
		}
		if get(p, "Runtime") != "provided.al2023" || get(p, "Handler") != "bootstrap" || !slices.Equal(toStrings(get(p, "Architectures")), []string{"arm64"}) {
			t.Errorf("%s: runtime %v handler %v architectures %v", logical, get(p, "Runtime"), get(p, "Handler"), get(p, "Architectures"))
		}
	}
	// The browser worker: an x86_64 image built from the repository's
	// Dockerfile, allowed helios, with exactly the worker's permissions.
	browser := get(res, "BrowserWorkerFunction")
	bp := get(browser, "Properties")
	if get(bp, "PackageType") != "Image" || !slices.Equal(toStrings(get(bp, "Architectures")), []string{"x86_64"}) || get(bp, "Runtime") != nil {
		t.Errorf("BrowserWorkerFunction: package %v architectures %v runtime %v", get(bp, "PackageType"), get(bp, "Architectures"), get(bp, "Runtime"))
	}
	if df, _ := get(browser, "Metadata", "Dockerfile").(string); df == "" || get(browser, "Metadata", "DockerContext") != "." {
		t.Errorf("BrowserWorkerFunction Metadata = %v", get(browser, "Metadata"))
	} else if _, err := os.Stat(filepath.Join("..", df)); err != nil {
		t.Errorf("BrowserWorkerFunction's Dockerfile: %v", err)
	}
	if a := get(bp, "Environment", "Variables", config.EnvAllowedCommands); a != "${AllowedCommands},helios" {
		t.Errorf("BrowserWorkerFunction allows %v", a)
	}
	if !reflect.DeepEqual(get(bp, "Policies"), get(res, "WorkerFunction", "Properties", "Policies")) {
		t.Error("the browser worker's policies differ from the worker's")
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
	if env[config.EnvAdapter] != config.AdapterLambda || env[config.EnvWorkerFunction] != "WorkerFunction" || env[config.EnvStitcherFunction] != "StitcherFunction" ||
		env[config.EnvBrowserWorkerFunction] != "BrowserWorkerFunction" || env[config.EnvAllowedCommands] != "${AllowedCommands},helios" {
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

// The orchestrator alone reaches active/ (one object per running job,
// which the sweep reads); every 5 minutes EventBridge Scheduler invokes it
// with {"sweep": {}} through a role that can do nothing else; its
// asynchronous invocations that fail after two retries go to a queue, with
// an alarm.
func TestSAMTemplateSweepAndFailures(t *testing.T) {
	tpl := loadTemplate(t)
	res := get(tpl, "Resources").(map[string]any)
	ofType := func(typ string) map[string]any {
		out := map[string]any{}
		for id, r := range res {
			if get(r, "Type") == typ {
				out[id] = get(r, "Properties")
			}
		}
		return out
	}
	// "X.Arn", as !GetAtt X.Arn reads once its tag is stripped.
	arnOf := func(v any) string {
		s, _ := v.(string)
		id, ok := strings.CutSuffix(s, ".Arn")
		if !ok {
			return ""
		}
		return id
	}
	queues := ofType("AWS::SQS::Queue")
	checkQueue := func(id string) {
		t.Helper()
		q, ok := queues[id]
		if !ok {
			t.Errorf("%s is not a queue of the template", id)
			return
		}
		if get(q, "SqsManagedSseEnabled") != true || get(q, "MessageRetentionPeriod") != 1209600 {
			t.Errorf("%s: SSE %v, retention %v; want SSE and 14 days", id, get(q, "SqsManagedSseEnabled"), get(q, "MessageRetentionPeriod"))
		}
	}

	// active/*: read, write and delete for the orchestrator, nothing for the
	// worker and the stitcher.
	key := layout.ActiveKey("demo")
	grants := func(fn string) map[string]bool {
		actions := map[string]bool{}
		walkStatements(get(res, fn, "Properties", "Policies"), func(st map[string]any) {
			for _, r := range toStrings(st["Resource"]) {
				_, pattern, ok := strings.Cut(r, "${AWS::Region}/")
				re := "^" + strings.ReplaceAll(regexp.QuoteMeta(pattern), `\*`, ".*") + "$"
				if ok && st["Effect"] == "Allow" && regexp.MustCompile(re).MatchString(key) {
					for _, a := range toStrings(st["Action"]) {
						actions[a] = true
					}
				}
			}
		})
		return actions
	}
	if got := grants("OrchestratorFunction"); !got["s3:GetObject"] || !got["s3:PutObject"] || !got["s3:DeleteObject"] {
		t.Errorf("the orchestrator may %v on %s, want s3:GetObject, s3:PutObject, s3:DeleteObject", got, key)
	}
	for _, fn := range []string{"WorkerFunction", "StitcherFunction"} {
		if got := grants(fn); len(got) > 0 {
			t.Errorf("%s may %v on %s: only the orchestrator uses active/", fn, got, key)
		}
	}

	// The sweep schedule.
	schedules := ofType("AWS::Scheduler::Schedule")
	if len(schedules) != 1 {
		t.Fatalf("%d AWS::Scheduler::Schedule resources, want 1", len(schedules))
	}
	for id, p := range schedules {
		if get(p, "ScheduleExpression") != "rate(5 minutes)" || get(p, "FlexibleTimeWindow", "Mode") != "OFF" {
			t.Errorf("%s: %v, flexible window %v; want rate(5 minutes), OFF", id, get(p, "ScheduleExpression"), get(p, "FlexibleTimeWindow"))
		}
		if st := get(p, "State"); st != nil && st != "ENABLED" {
			t.Errorf("%s: state %v", id, st)
		}
		target := get(p, "Target")
		if arnOf(get(target, "Arn")) != "OrchestratorFunction" {
			t.Errorf("%s: target %v, want the orchestrator", id, get(target, "Arn"))
		}
		var input, want any
		json.Unmarshal([]byte(`{"sweep":{}}`), &want)
		if s, _ := get(target, "Input").(string); json.Unmarshal([]byte(s), &input) != nil || !reflect.DeepEqual(input, want) {
			t.Errorf("%s: input %v, want {\"sweep\":{}}", id, get(target, "Input"))
		}
		if n, _ := get(target, "RetryPolicy", "MaximumRetryAttempts").(int); n < 1 {
			t.Errorf("%s: retry policy %v", id, get(target, "RetryPolicy"))
		}
		dlq := arnOf(get(target, "DeadLetterConfig", "Arn"))
		checkQueue(dlq)

		role := arnOf(get(target, "RoleArn"))
		if get(res, role, "Type") != "AWS::IAM::Role" {
			t.Fatalf("%s: role %v", id, get(target, "RoleArn"))
		}
		rp := get(res, role, "Properties")
		trust := get(rp, "AssumeRolePolicyDocument", "Statement").([]any)
		if len(trust) != 1 || get(trust[0], "Principal", "Service") != "scheduler.amazonaws.com" || get(trust[0], "Condition", "StringEquals", "aws:SourceAccount") == nil {
			t.Errorf("%s trusts %v, want scheduler.amazonaws.com for this account only", role, trust)
		}
		if get(rp, "ManagedPolicyArns") != nil {
			t.Errorf("%s has managed policies", role)
		}
		var got []string
		walkStatements(get(rp, "Policies"), func(st map[string]any) {
			got = append(got, fmt.Sprint(st["Effect"], " ", toStrings(st["Action"]), " on ", toStrings(st["Resource"])))
		})
		slices.Sort(got)
		wantGrants := []string{"Allow [lambda:InvokeFunction] on [OrchestratorFunction.Arn]", "Allow [sqs:SendMessage] on [" + dlq + ".Arn]"}
		if !slices.Equal(got, wantGrants) {
			t.Errorf("%s may:\n  %s\nwant:\n  %s", role, strings.Join(got, "\n  "), strings.Join(wantGrants, "\n  "))
		}
	}

	// The on-failure queue of the orchestrator's asynchronous invocations.
	orch := get(res, "OrchestratorFunction", "Properties")
	eic := get(orch, "EventInvokeConfig")
	if get(eic, "MaximumRetryAttempts") != 2 || get(eic, "DestinationConfig", "OnFailure", "Type") != "SQS" {
		t.Errorf("orchestrator EventInvokeConfig = %v, want 2 retries and an SQS destination on failure", eic)
	}
	failures := arnOf(get(eic, "DestinationConfig", "OnFailure", "Destination"))
	checkQueue(failures)
	alarmed := false
	for id, a := range ofType("AWS::CloudWatch::Alarm") {
		dims, _ := get(a, "Dimensions").([]any)
		if len(dims) != 1 || get(dims[0], "Name") != "QueueName" || get(dims[0], "Value") != failures+".QueueName" {
			continue
		}
		alarmed = true
		if get(a, "Namespace") != "AWS/SQS" || get(a, "MetricName") != "ApproximateNumberOfMessagesVisible" ||
			get(a, "Threshold") != 1 || get(a, "ComparisonOperator") != "GreaterThanOrEqualToThreshold" {
			t.Errorf("%s = %v", id, a)
		}
		if fmt.Sprint(get(a, "AlarmActions")) != "[HasAlarmTopic [AlarmTopicArn] AWS::NoValue]" {
			t.Errorf("%s notifies %v, want AlarmTopicArn when set", id, get(a, "AlarmActions"))
		}
	}
	if !alarmed {
		t.Errorf("no alarm on %s's visible messages", failures)
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
