package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeAWS answers STS GetCallerIdentity and CloudFormation DescribeStacks
// in the query protocol (form-encoded Action, XML answers) the SDK speaks
// to both.
type fakeAWS struct {
	mu     sync.Mutex
	stacks map[string]string // name: status
	fail   map[string]string // Action: error code to answer with
	asked  []string          // the StackName of each DescribeStacks
}

func (f *fakeAWS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	action := r.PostForm.Get("Action")
	w.Header().Set("Content-Type", "text/xml")
	if code, ok := f.fail[action]; ok {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s from the fake</Message></Error><RequestId>r1</RequestId></ErrorResponse>`, code, code)
		return
	}
	switch action {
	case "GetCallerIdentity":
		fmt.Fprint(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>`+
			`<Arn>arn:aws:iam::123456789012:user/dev</Arn><UserId>AIDAEXAMPLE</UserId><Account>123456789012</Account>`+
			`</GetCallerIdentityResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
	case "DescribeStacks":
		name := r.PostForm.Get("StackName")
		f.asked = append(f.asked, name)
		status, ok := f.stacks[name]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>Sender</Type><Code>ValidationError</Code>`+
				`<Message>Stack with id %s does not exist</Message></Error><RequestId>r2</RequestId></ErrorResponse>`, name)
			return
		}
		fmt.Fprintf(w, `<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member>`+
			`<StackName>%s</StackName><StackId>arn:aws:cloudformation:eu-west-1:123456789012:stack/%s/1</StackId>`+
			`<StackStatus>%s</StackStatus><CreationTime>2026-12-01T00:00:00Z</CreationTime></member></Stacks></DescribeStacksResult>`+
			`<ResponseMetadata><RequestId>r2</RequestId></ResponseMetadata></DescribeStacksResponse>`, name, name, status)
	default:
		http.Error(w, "unexpected action "+action, http.StatusBadRequest)
	}
}

// awsEnv points the SDK at the fake with the given credentials and region
// and nothing from the machine (no config files, no instance metadata).
func awsEnv(t *testing.T, url string, env map[string]string) {
	dir := t.TempDir()
	base := map[string]string{
		"AWS_ENDPOINT_URL":            url,
		"AWS_CONFIG_FILE":             filepath.Join(dir, "none"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "none"),
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_REGION":                  "eu-west-1",
		"AWS_ACCESS_KEY_ID":           "AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY":       "secret",
		"AWS_PROFILE":                 "",
		"AWS_DEFAULT_REGION":          "",
		"AWS_SESSION_TOKEN":           "",
	}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		if v == "" {
			t.Setenv(k, "") // registers the restore
			os.Unsetenv(k)
			continue
		}
		t.Setenv(k, v)
	}
}

func TestStackCheck(t *testing.T) {
	configFile := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(configFile, []byte("[default]\nregion = ap-south-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		args       []string
		env        map[string]string
		fail       map[string]string
		code       int
		stdout     string // in stdout
		stderr     string // in stderr
		askedStack string // the DescribeStacks StackName, if one is made
	}{
		{name: "there", code: exitThere, stdout: "Stack HeliosRenderStack in account 123456789012, region eu-west-1: UPDATE_COMPLETE.", askedStack: "HeliosRenderStack"},
		{name: "named in the CDK's arguments", args: []string{"-c", "workerConcurrency=10", "--context", "stackName=Other"},
			code: exitAbsent, stdout: "No stack Other in account 123456789012, region eu-west-1: nothing to destroy there.", askedStack: "Other"},
		{name: "the region of AWS_CONFIG_FILE", env: map[string]string{"AWS_REGION": "", "AWS_CONFIG_FILE": configFile},
			code: exitAbsent, stdout: "region ap-south-1", askedStack: "HeliosRenderStack"},
		{name: "no region", env: map[string]string{"AWS_REGION": ""}, code: exitTrouble, stderr: "no AWS region: set AWS_REGION"},
		{name: "no credentials", env: map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
			code: exitTrouble, stderr: "no AWS credentials found: run `aws configure`"},
		{name: "expired session", fail: map[string]string{"GetCallerIdentity": "ExpiredToken"}, code: exitTrouble, stderr: "the AWS session has expired"},
		{name: "unknown keys", fail: map[string]string{"GetCallerIdentity": "InvalidClientTokenId"}, code: exitTrouble, stderr: "`aws configure`"},
		{name: "denied", fail: map[string]string{"DescribeStacks": "AccessDenied"}, code: exitTrouble,
			stderr: "access denied: AccessDenied from the fake", askedStack: ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeAWS{stacks: map[string]string{"HeliosRenderStack": "UPDATE_COMPLETE"}, fail: c.fail}
			if c.name != "there" {
				delete(f.stacks, "HeliosRenderStack")
			}
			srv := httptest.NewServer(f)
			defer srv.Close()
			awsEnv(t, srv.URL, c.env)
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), c.args, &stdout, &stderr)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), c.stdout) || !strings.Contains(stderr.String(), c.stderr) {
				t.Errorf("stdout %q, stderr %q: want %q and %q", stdout.String(), stderr.String(), c.stdout, c.stderr)
			}
			if c.code == exitTrouble && !strings.Contains(stderr.String(), "nothing was destroyed") {
				t.Errorf("stderr does not say nothing was destroyed: %s", stderr.String())
			}
			if strings.Contains(stderr.String(), "operation error") || strings.Contains(stderr.String(), "https response error") {
				t.Errorf("stderr repeats the SDK's wrapping: %s", stderr.String())
			}
			if c.askedStack != "" && (len(f.asked) != 1 || f.asked[0] != c.askedStack) {
				t.Errorf("DescribeStacks asked for %v, want %s", f.asked, c.askedStack)
			}
		})
	}
}

// make destroy-aws runs `cdk destroy` only for a stack that is there, ends
// at once (exit 0) for one that is not, and fails when it could not tell.
// The CDK is a stand-in that says it ran; the targets that build what the
// real CDK app needs are taken as made (-o).
func TestMakeDestroyAWS(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed")
	}
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		stacks map[string]string
		fail   map[string]string
		ok     bool
		cdk    bool
	}{
		{"there", map[string]string{"HeliosRenderStack": "CREATE_COMPLETE"}, nil, true, true},
		{"not there", nil, nil, true, false},
		{"cannot tell", nil, map[string]string{"GetCallerIdentity": "ExpiredToken"}, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(&fakeAWS{stacks: c.stacks, fail: c.fail})
			defer srv.Close()
			awsEnv(t, srv.URL, nil)
			cmd := exec.Command(mk, "-s", "-C", root, "-o", "deps-node", "-o", "infra/cdk/node_modules", "-o", "package", "-o", "layer",
				"destroy-aws", "CDK=echo CDK-RAN")
			out, err := cmd.CombinedOutput()
			if (err == nil) != c.ok || strings.Contains(string(out), "CDK-RAN destroy") != c.cdk {
				t.Errorf("make destroy-aws: %v, want success %v and cdk destroy run %v:\n%s", err, c.ok, c.cdk, out)
			}
		})
	}
}
