package cloudrun

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/cost"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
)

// The deployment under test. The stand-in gcloud answers for any project.
const (
	project      = "helios-test-1"
	region       = "us-central1"
	image        = "us-central1-docker.pkg.dev/helios-test-1/helios/helios:test"
	browserImage = "us-central1-docker.pkg.dev/helios-test-1/helios/helios-browser-worker:test"
	bucket       = "helios-renders-" + project // deploy.sh's default

	projectNumber = "123456789012" // what the stand-in says `projects describe` returns
)

var (
	orchestratorSA = "helios-orchestrator@" + project + ".iam.gserviceaccount.com"
	workerSA       = "helios-worker@" + project + ".iam.gserviceaccount.com"
	stitcherSA     = "helios-stitcher@" + project + ".iam.gserviceaccount.com"
	pushSA         = "helios-push@" + project + ".iam.gserviceaccount.com"
	pubsubAgent    = "service-" + projectNumber + "@gcp-sa-pubsub.iam.gserviceaccount.com"
	listerRole     = "projects/" + project + "/roles/heliosBucketLister"
)

// serviceURL is what the stand-in reports as a deployed service's URL.
func serviceURL(name string) string { return "https://" + name + "-abc-uc.a.run.app" }

// fakeGcloud stands in for the Google Cloud CLI. It logs its argv (one JSON
// array per line), keeps what `create` made as files so `describe` fails
// before and succeeds after (and a second `create` of the same thing fails
// as the real one would), copies the files deploy.sh hands it (service
// YAMLs, the lifecycle rules) for the test to read, and answers the reads
// the scripts make: the project number, service URLs, the bucket's
// notifications. deploy.sh writes every flag as --name=value.
const fakeGcloud = `#!/usr/bin/env bash
set -u
dir=${FAKE_GCLOUD_DIR:?}
mkdir -p "$dir/state" "$dir/files"

json='[' sep=''
for a in "$@"; do
  a=${a//\\/\\\\}; a=${a//\"/\\\"}; a=${a//$'\n'/\\n}; a=${a//$'\t'/\\t}
  json+="$sep\"$a\""; sep=','
done
printf '%s]\n' "$json" >>"$dir/calls.log"

# FAKE_GCLOUD_FAIL makes the stand-in answer as gcloud does when it cannot
# look: auth (no account signed in: every command), permission (a describe
# the account may not make), project (a project ID that is not there or not
# yours).
group=$(printf '%s.' "$@" | sed 's/\.-.*//; s/\.$//')
case ${FAKE_GCLOUD_FAIL:-} in
  auth)
    printf 'ERROR: (gcloud.%s) You do not currently have an active account selected.\nPlease run:\n\n  $ gcloud auth login\n\nto obtain new credentials.\n' "$group" >&2
    exit 1 ;;
  permission)
    if [[ " $* " == *" describe "* && $1 != projects ]]; then
      printf "ERROR: (gcloud.%s) PERMISSION_DENIED: Permission 'x.get' denied on resource (or it may not exist).\n" "$group" >&2
      exit 1
    fi ;;
  project)
    if [[ $1 == projects ]]; then
      printf 'ERROR: (gcloud.projects.describe) [someone@example.com] does not have permission to access projects instance [%s] (or it may not exist): The caller does not have permission\n' "$3" >&2
      exit 1
    fi ;;
esac

words=() project=''
for a in "$@"; do
  case $a in
    --project=*) project=${a#--project=} ;;
    --lifecycle-file=*) cp "${a#--lifecycle-file=}" "$dir/files/lifecycle.json" ;;
    -*) ;;
    *) words+=("$a") ;;
  esac
done

# The command group and the resource's short name: the same for create,
# describe and delete (service accounts are created by ID and described by
# email; buckets are gs:// URLs, sometimes with a trailing slash).
key() {
  local name=$2
  name=${name#gs://}; name=${name%/}; name=${name%%@*}
  printf '%s/%s' "$1" "$name" | tr '/ ' '__'
}

case "${words[*]}" in
  "projects describe "*)
    echo ` + projectNumber + ` ;;
  "run services replace "*)
    file=${words[3]}
    name=$(sed -n 's/^  name: *//p' "$file" | head -n 1)
    # Named after this call's line in calls.log.
    n=$(wc -l <"$dir/calls.log")
    cp "$file" "$dir/files/replace-$((n)).yaml"
    : >"$dir/state/$(key 'run services' "$name")" ;;
  "run services describe "*)
    name=${words[3]}
    [[ -e $dir/state/$(key 'run services' "$name") ]] || { echo "ERROR: (gcloud.run.services.describe) Cannot find service [$name]" >&2; exit 1; }
    echo "https://$name-abc-uc.a.run.app" ;;
  "storage buckets notifications list "*)
    if [[ -e $dir/state/notification ]]; then
      printf '7\t//pubsub.googleapis.com/projects/%s/topics/helios-jobs\tjobs/\n' "$project"
    fi ;;
  "storage buckets notifications create "*)
    [[ ! -e $dir/state/notification ]] || { echo "ERROR: duplicate notification" >&2; exit 1; }
    : >"$dir/state/notification" ;;
  "storage buckets notifications delete "*)
    rm -f "$dir/state/notification" ;;
  "storage rm "*)
    rm -f "$dir/state/$(key 'storage buckets' "${words[2]}")" ;;
  "scheduler jobs create http "*)
    k=$(key 'scheduler jobs' "${words[4]}")
    [[ ! -e $dir/state/$k ]] || { echo "ERROR: ALREADY_EXISTS: $k" >&2; exit 1; }
    : >"$dir/state/$k" ;;
  "scheduler jobs update http "*)
    k=$(key 'scheduler jobs' "${words[4]}")
    [[ -e $dir/state/$k ]] || { echo "ERROR: NOT_FOUND: $k" >&2; exit 1; } ;;
  "storage buckets describe "*)
    [[ -e $dir/state/$(key 'storage buckets' "${words[3]}") ]] || { echo "ERROR: (gcloud.storage.buckets.describe) ${words[3]} not found: 404." >&2; exit 1; } ;;
  "iam roles describe "*)
    [[ -e $dir/state/$(key 'iam roles' "${words[3]}") ]] || { echo "ERROR: NOT_FOUND" >&2; exit 1; }
    echo "" ;;
  *)
    for ((i = 0; i < ${#words[@]}; i++)); do
      verb=${words[i]}
      case $verb in describe | create | delete) ;; *) continue ;; esac
      k=$(key "${words[*]:0:i}" "${words[i+1]:-}")
      case $verb in
        describe) [[ -e $dir/state/$k ]] || { echo "ERROR: NOT_FOUND: $k" >&2; exit 1; } ;;
        create) [[ ! -e $dir/state/$k ]] || { echo "ERROR: ALREADY_EXISTS: $k" >&2; exit 1; }; : >"$dir/state/$k" ;;
        delete) [[ -e $dir/state/$k ]] || { echo "ERROR: NOT_FOUND: $k" >&2; exit 1; }; rm -f "$dir/state/$k" ;;
      esac
      break
    done ;;
esac
exit 0
`

// cloud is one stand-in gcloud with its state: one imaginary project.
type cloud struct {
	bin   string // the stand-in, also first on PATH as "gcloud"
	state string // FAKE_GCLOUD_DIR
	home  string
	seen  int // calls already returned by run
}

func newCloud(t *testing.T) *cloud {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	dir := t.TempDir()
	c := &cloud{bin: filepath.Join(dir, "bin", "gcloud"), state: filepath.Join(dir, "gcloud"), home: filepath.Join(dir, "home")}
	for _, d := range []string{filepath.Dir(c.bin), c.state, c.home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(c.bin, []byte(fakeGcloud), 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// result is one script run: its output and the gcloud calls it made.
type result struct {
	stdout, stderr string
	err            error
	calls          []call
}

// call is one gcloud argv, split into positional words and --flags.
type call struct {
	line  int // in calls.log, from 1
	argv  []string
	words []string            // positional arguments, in order
	flags map[string][]string // --name=value (a flag without a value maps to "")
}

func parseCall(argv []string) call {
	c := call{argv: argv, flags: map[string][]string{}}
	for _, a := range argv {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, value, _ := strings.Cut(name, "=")
			c.flags[name] = append(c.flags[name], value)
		} else {
			c.words = append(c.words, a)
		}
	}
	return c
}

// is reports whether the call starts with the given command words.
func (c call) is(cmd ...string) bool {
	return len(c.words) >= len(cmd) && slices.Equal(c.words[:len(cmd)], cmd)
}

// flag returns the single value of a flag ("" and false if absent).
func (c call) flag(name string) (string, bool) {
	v, ok := c.flags[name]
	if !ok {
		return "", false
	}
	return v[len(v)-1], true
}

func (c call) String() string { return "gcloud " + strings.Join(c.argv, " ") }

// run runs a script (one beside this file, or a path) with the stand-in gcloud and
// the given variables (and nothing else from the test's environment that a
// script reads).
func (c *cloud) run(t *testing.T, script string, env ...string) result {
	t.Helper()
	cmd := exec.Command("bash", script)
	cmd.Env = append([]string{
		"PATH=" + filepath.Dir(c.bin) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + c.home,
		"LC_ALL=C",
		"GCLOUD=" + c.bin,
		"FAKE_GCLOUD_DIR=" + c.state,
	}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r := result{err: cmd.Run()}
	r.stdout, r.stderr = stdout.String(), stderr.String()
	all := c.calls(t)
	r.calls = all[c.seen:]
	c.seen = len(all)
	return r
}

func (c *cloud) calls(t *testing.T) []call {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(c.state, "calls.log"))
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		t.Fatal(err)
	}
	var calls []call
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var argv []string
		if err := json.Unmarshal(sc.Bytes(), &argv); err != nil {
			t.Fatalf("calls.log: %q: %v", sc.Text(), err)
		}
		c := parseCall(argv)
		c.line = len(calls) + 1
		calls = append(calls, c)
	}
	return calls
}

// file returns a file the stand-in kept (see fakeGcloud).
func (c *cloud) file(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(c.state, "files", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// deployEnv: both images given, so nothing is built (and the browser worker
// deployed, as by default).
func deployEnv(extra ...string) []string {
	return append([]string{"PROJECT=" + project, "REGION=" + region, "IMAGE=" + image, "BROWSER_IMAGE=" + browserImage}, extra...)
}

func mustSucceed(t *testing.T, what string, r result) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", what, r.err, r.stdout, r.stderr)
	}
}

func TestScriptsParse(t *testing.T) {
	for _, script := range []string{"deploy.sh", "destroy.sh"} {
		// make deploy-gcp and destroy-gcp run them directly.
		if fi, err := os.Stat(script); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable (%v)", script, err)
		}
	}
	for _, script := range []string{"deploy.sh", "destroy.sh", "gcloud.sh"} {
		if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", script, err, out)
		}
	}
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Log("shellcheck is not installed: skipped")
		return
	}
	if out, err := exec.Command(shellcheck, "-x", "deploy.sh", "destroy.sh").CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}

func TestDeployNeedsProjectAndRegion(t *testing.T) {
	c := newCloud(t)
	for _, tc := range []struct {
		env  []string
		want []string
	}{
		{[]string{"REGION=" + region}, []string{"PROJECT"}},
		{[]string{"PROJECT=" + project}, []string{"REGION"}},
		{nil, []string{"PROJECT", "REGION"}},
	} {
		for _, script := range []string{"deploy.sh", "destroy.sh"} {
			r := c.run(t, script, tc.env...)
			if r.err == nil {
				t.Errorf("%s with %v: succeeded, want a failure naming %v", script, tc.env, tc.want)
			}
			for _, name := range tc.want {
				if !strings.Contains(r.stderr, name+" is not set") {
					t.Errorf("%s with %v: stderr %q does not name %s", script, tc.env, r.stderr, name)
				}
			}
			if len(r.calls) > 0 {
				t.Errorf("%s with %v: called gcloud before checking its inputs: %v", script, tc.env, r.calls[0])
			}
		}
	}
	r := c.run(t, "deploy.sh", deployEnv("WORKER_MAX_INSTANCES=lots")...)
	if r.err == nil || !strings.Contains(r.stderr, "WORKER_MAX_INSTANCES") {
		t.Errorf("deploy.sh with WORKER_MAX_INSTANCES=lots: err %v, stderr %q", r.err, r.stderr)
	}
}

// TestDeploy deploys into an empty project, deploys again (everything now
// exists), then checks what was made and that nothing was made twice.
func TestDeploy(t *testing.T) {
	c := newCloud(t)
	first := c.run(t, "deploy.sh", deployEnv()...)
	mustSucceed(t, "deploy.sh (fresh)", first)
	second := c.run(t, "deploy.sh", deployEnv()...)
	mustSucceed(t, "deploy.sh (re-run)", second)

	for _, r := range []result{first, second} {
		checkEveryCall(t, r.calls)
		checkServices(t, c, r.calls, 100, bucket, true)
		checkAllowlists(t, replaced(t, c, r.calls), "ffmpeg", true)
		checkBucketIAM(t, r.calls)
		checkInvokers(t, r.calls, true)
		checkOtherIAM(t, r.calls)
		checkLifecycle(t, c, 7)
		checkOrder(t, r.calls, true)
		for _, call := range r.calls {
			if call.is("builds") {
				t.Errorf("%v: IMAGE and BROWSER_IMAGE are given, nothing is built", call)
			}
		}
	}

	// The fresh run creates everything once.
	checkCreates(t, first.calls)
	notification := only(t, first.calls, "storage", "buckets", "notifications", "create")
	wantFlags(t, notification, map[string]string{
		"topic": "helios-jobs", "event-types": "OBJECT_FINALIZE", "object-prefix": "jobs/", "payload-format": "json",
	})
	if !slices.Equal(notification.words[4:], []string{"gs://" + bucket}) {
		t.Errorf("%v: want it on gs://%s", notification, bucket)
	}
	for _, r := range []result{first, second} {
		wantFlags(t, only(t, r.calls, "storage", "buckets", "update"), map[string]string{
			"uniform-bucket-level-access": "", "public-access-prevention": "",
		})
	}
	create := only(t, first.calls, "storage", "buckets", "create")
	wantFlags(t, create, map[string]string{"uniform-bucket-level-access": "", "public-access-prevention": "", "location": region})
	role := only(t, first.calls, "iam", "roles", "create", "heliosBucketLister")
	checkListerPermissions(t, role)
	checkPushSubscription(t, only(t, first.calls, "pubsub", "subscriptions", "create", "helios-jobs-push"), true)
	checkSweepJob(t, first.calls, true, region)
	deadSub := only(t, first.calls, "pubsub", "subscriptions", "create", "helios-jobs-dead-sub")
	wantFlags(t, deadSub, map[string]string{"topic": "helios-jobs-dead", "expiration-period": "never"})

	// The re-run creates nothing: it looks things up and updates in place.
	for _, call := range second.calls {
		if slices.Contains(call.words, "create") || slices.Contains(call.words, "undelete") {
			t.Errorf("re-run: %v: everything exists already", call)
		}
	}
	checkListerPermissions(t, only(t, second.calls, "iam", "roles", "update", "heliosBucketLister"))
	checkPushSubscription(t, only(t, second.calls, "pubsub", "subscriptions", "update", "helios-jobs-push"), false)
	checkSweepJob(t, second.calls, false, region)

	// The user is told where things are and how to start.
	for _, want := range []string{
		"gs://" + bucket,
		serviceURL("helios-orchestrator"),
		"gcloud storage cp examples/jobs/demo.json gs://" + bucket + "/jobs/demo.json",
		`curl -H "Authorization: Bearer $(gcloud auth print-identity-token)"`,
		serviceURL("helios-orchestrator") + "/jobs/demo",
		"--role=roles/run.invoker",
		serviceURL("helios-browser-worker"),
		browserImage,
	} {
		if !strings.Contains(second.stdout, want) {
			t.Errorf("deploy.sh output lacks %q:\n%s", want, second.stdout)
		}
	}
}

// TestDeploySettings checks that the optional inputs reach the services and
// the bucket.
func TestDeploySettings(t *testing.T) {
	c := newCloud(t)
	r := c.run(t, "deploy.sh", deployEnv("BUCKET=my-renders", "WORKER_MAX_INSTANCES=25",
		"ALLOWED_COMMANDS=ffmpeg,helios", "SEGMENT_EXPIRY_DAYS=3", "SCHEDULER_REGION=europe-west1")...)
	mustSucceed(t, "deploy.sh", r)
	checkSweepJob(t, r.calls, true, "europe-west1")
	// destroy.sh finds the job where deploy.sh put it.
	d := c.run(t, "destroy.sh", "PROJECT="+project, "REGION="+region, "BUCKET=my-renders", "SCHEDULER_REGION=europe-west1")
	mustSucceed(t, "destroy.sh", d)
	wantFlags(t, only(t, d.calls, "scheduler", "jobs", "delete", "helios-sweep"), map[string]string{"location": "europe-west1"})
	checkServices(t, c, r.calls, 25, "my-renders", true)
	// helios is on ALLOWED_COMMANDS already: not added twice.
	checkAllowlists(t, replaced(t, c, r.calls), "ffmpeg,helios", true)
	checkLifecycle(t, c, 3)
	for _, doc := range replaced(t, c, r.calls) {
		env := envOf(doc)
		if env[config.EnvStorageURL] != "gs://my-renders" || env[config.EnvAllowedCommands] != "ffmpeg,helios" {
			t.Errorf("%s: storage %q, allowed commands %q", doc.Metadata.Name, env[config.EnvStorageURL], env[config.EnvAllowedCommands])
		}
	}
	for _, call := range r.calls {
		if call.is("storage", "buckets") && !slices.Contains(call.words, "gs://my-renders") && !slices.Contains(call.words, "gs://my-renders/") {
			t.Errorf("%v: not on gs://my-renders", call)
		}
	}
}

// checkAllowlists: the worker and the stitcher run ALLOWED_COMMANDS; with a
// browser worker, it and the orchestrator (which checks every spec against
// its own list) allow helios too.
func checkAllowlists(t *testing.T, docs map[string]service, allowed string, browser bool) {
	t.Helper()
	withHelios := allowed
	if !job.ParseAllowlist(allowed).Allows("helios") {
		withHelios += ",helios"
	}
	want := map[string]string{"helios-worker": allowed, "helios-stitcher": allowed, "helios-orchestrator": allowed}
	if browser {
		want["helios-orchestrator"] = withHelios
		want["helios-browser-worker"] = withHelios
	}
	for name, w := range want {
		doc, ok := docs[name]
		if !ok {
			t.Errorf("%s was not deployed", name)
			continue
		}
		if got := envOf(doc)[config.EnvAllowedCommands]; got != w {
			t.Errorf("%s: %s=%q, want %q", name, config.EnvAllowedCommands, got, w)
		}
	}
}

// TestDeployWithoutBrowserWorker: BROWSER_WORKER=0 is the deployment from
// before the browser worker: three services, no browser image, nothing that
// names the browser worker, and the orchestrator with ALLOWED_COMMANDS and no
// browser worker URL. destroy.sh finds no browser worker to remove.
func TestDeployWithoutBrowserWorker(t *testing.T) {
	c := newCloud(t)
	for _, run := range []string{"fresh", "re-run"} {
		r := c.run(t, "deploy.sh", "PROJECT="+project, "REGION="+region, "IMAGE="+image, "BROWSER_WORKER=0")
		mustSucceed(t, "deploy.sh BROWSER_WORKER=0 ("+run+")", r)
		checkEveryCall(t, r.calls)
		checkServices(t, c, r.calls, 100, bucket, false)
		checkAllowlists(t, replaced(t, c, r.calls), "ffmpeg", false)
		checkInvokers(t, r.calls, false)
		checkOrder(t, r.calls, false)
		for _, call := range r.calls {
			if call.is("builds") || slices.ContainsFunc(call.argv, func(a string) bool { return strings.Contains(a, "browser") }) {
				t.Errorf("BROWSER_WORKER=0: %v", call)
			}
		}
		if strings.Contains(r.stdout, serviceURL("helios-browser-worker")) {
			t.Errorf("BROWSER_WORKER=0: output names a browser worker:\n%s", r.stdout)
		}
	}
	d := c.run(t, "destroy.sh", "PROJECT="+project, "REGION="+region)
	mustSucceed(t, "destroy.sh", d)
	only(t, d.calls, "run", "services", "describe", "helios-browser-worker")
	for _, call := range d.calls {
		if call.is("run", "services", "delete", "helios-browser-worker") {
			t.Errorf("%v: there is no browser worker", call)
		}
	}
	if !strings.Contains(d.stdout, "helios-browser-worker: already gone") {
		t.Errorf("destroy.sh output lacks the browser worker:\n%s", d.stdout)
	}
}

// TestDeployBuildsImages: without IMAGE and BROWSER_IMAGE, deploy.sh builds
// both images with Cloud Build from the checkout, each with its recipe, and
// deploys them; with BROWSER_WORKER=0 only the first.
func TestDeployBuildsImages(t *testing.T) {
	for _, browser := range []bool{true, false} {
		t.Run(fmt.Sprintf("browser=%v", browser), func(t *testing.T) {
			c := newCloud(t)
			env := []string{"PROJECT=" + project, "REGION=" + region}
			recipes := map[string]string{"infra/cloudrun/cloudbuild.yaml": "helios"}
			if browser {
				recipes["infra/cloudrun/browser-worker.cloudbuild.yaml"] = "helios-browser-worker"
			} else {
				env = append(env, "BROWSER_WORKER=0")
			}
			r := c.run(t, "deploy.sh", env...)
			mustSucceed(t, "deploy.sh", r)
			built := map[string]string{} // repository name → image
			for _, call := range r.calls {
				if !call.is("builds") {
					continue
				}
				config, _ := call.flag("config")
				name, ok := recipes[config]
				if !ok || !slices.Equal(call.words, []string{"builds", "submit", "."}) {
					t.Errorf("%v: want gcloud builds submit . with one of %v", call, recipes)
					continue
				}
				if f, _ := call.flag("ignore-file"); f != "infra/cloudrun/gcloudignore" {
					t.Errorf("%v: --ignore-file=%q, want infra/cloudrun/gcloudignore", call, f)
				}
				sub, _ := call.flag("substitutions")
				img, ok := strings.CutPrefix(sub, "_IMAGE=")
				if prefix := region + "-docker.pkg.dev/" + project + "/helios/" + name + ":"; !ok || !strings.HasPrefix(img, prefix) {
					t.Errorf("%v: --substitutions=%q, want _IMAGE=%s...", call, sub, prefix)
				}
				if _, dup := built[name]; dup {
					t.Errorf("%v: %s built twice", call, name)
				}
				built[name] = img
			}
			if len(built) != len(recipes) {
				t.Fatalf("built %v, want one image from each of %v", built, recipes)
			}
			docs := replaced(t, c, r.calls)
			for service, name := range map[string]string{
				"helios-orchestrator": "helios", "helios-worker": "helios", "helios-stitcher": "helios",
				"helios-browser-worker": "helios-browser-worker",
			} {
				doc, ok := docs[service]
				if !ok {
					if browser || service != "helios-browser-worker" {
						t.Errorf("%s was not deployed", service)
					}
					continue
				}
				if got := doc.Spec.Template.Spec.Containers[0].Image; got != built[name] {
					t.Errorf("%s: image %q, want the one built, %q", service, got, built[name])
				}
			}
		})
	}
}

// TestDeployRefusesBadBrowserInputs: a bad BROWSER_WORKER or BROWSER_IMAGE
// stops deploy.sh before any gcloud call, naming the variable.
func TestDeployRefusesBadBrowserInputs(t *testing.T) {
	c := newCloud(t)
	for _, tc := range []struct{ env, name string }{
		{"BROWSER_WORKER=yes", "BROWSER_WORKER"},
		{"BROWSER_WORKER=2", "BROWSER_WORKER"},
		{"BROWSER_WORKER=true", "BROWSER_WORKER"},
		{"BROWSER_IMAGE=helios browser", "BROWSER_IMAGE"},
		{`BROWSER_IMAGE=x"\n  command: ["sh"]`, "BROWSER_IMAGE"},
	} {
		r := c.run(t, "deploy.sh", deployEnv(tc.env)...)
		if r.err == nil || !strings.Contains(r.stderr, tc.name+"=") {
			t.Errorf("deploy.sh with %s: err %v, stderr %q; want a refusal naming %s", tc.env, r.err, r.stderr, tc.name)
		}
		if len(r.calls) > 0 {
			t.Errorf("deploy.sh with %s: called gcloud before checking its inputs: %v", tc.env, r.calls[0])
		}
	}
	// An image for a browser worker that will not be deployed is a mistake.
	r := c.run(t, "deploy.sh", deployEnv("BROWSER_WORKER=0")...)
	if r.err == nil || !strings.Contains(r.stderr, "BROWSER_IMAGE=") || !strings.Contains(r.stderr, "BROWSER_WORKER=0") || len(r.calls) > 0 {
		t.Errorf("deploy.sh with BROWSER_IMAGE and BROWSER_WORKER=0: err %v, stderr %q, %d calls", r.err, r.stderr, len(r.calls))
	}
}

// TestUnreplacedPlaceholderStops: a placeholder deploy.sh has no value for
// stops the deployment before any service is deployed.
func TestUnreplacedPlaceholderStops(t *testing.T) {
	c := newCloud(t)
	dir := filepath.Join(t.TempDir(), "infra", "cloudrun")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"deploy.sh", "gcloud.sh", "orchestrator.yaml", "worker.yaml", "stitcher.yaml", "browser-worker.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if name == "worker.yaml" {
			data = append(data, "            - name: HELIOS_STATUS_INTERVAL\n              value: \"${STATUS_INTERVAL}\"\n"...)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := c.run(t, filepath.Join(dir, "deploy.sh"), deployEnv()...)
	if r.err == nil || !strings.Contains(r.stderr, "${STATUS_INTERVAL}") {
		t.Fatalf("deploy.sh with an unknown placeholder: err %v, stderr %q", r.err, r.stderr)
	}
	for _, call := range r.calls {
		if call.is("run", "services", "replace") {
			t.Errorf("%v: deployed despite the placeholder", call)
		}
	}
}

func TestDestroy(t *testing.T) {
	for _, deleteBucket := range []bool{false, true} {
		t.Run(fmt.Sprintf("DELETE_BUCKET=%v", deleteBucket), func(t *testing.T) {
			c := newCloud(t)
			mustSucceed(t, "deploy.sh", c.run(t, "deploy.sh", deployEnv()...))
			env := []string{"PROJECT=" + project, "REGION=" + region}
			if deleteBucket {
				env = append(env, "DELETE_BUCKET=1")
			}
			r := c.run(t, "destroy.sh", env...)
			mustSucceed(t, "destroy.sh", r)
			checkEveryCall(t, r.calls)

			for _, want := range [][]string{
				{"run", "services", "delete", "helios-orchestrator"},
				{"run", "services", "delete", "helios-worker"},
				{"run", "services", "delete", "helios-stitcher"},
				{"run", "services", "delete", "helios-browser-worker"},
				{"run", "services", "delete", "helios-sweeper"},
				{"pubsub", "subscriptions", "delete", "helios-jobs-push"},
				{"pubsub", "subscriptions", "delete", "helios-jobs-dead-sub"},
				{"pubsub", "topics", "delete", "helios-jobs"},
				{"pubsub", "topics", "delete", "helios-jobs-dead"},
				{"storage", "buckets", "notifications", "delete", "projects/_/buckets/" + bucket + "/notificationConfigs/7"},
				{"iam", "roles", "delete", "heliosBucketLister"},
				{"iam", "service-accounts", "delete", orchestratorSA},
				{"iam", "service-accounts", "delete", workerSA},
				{"iam", "service-accounts", "delete", stitcherSA},
				{"iam", "service-accounts", "delete", pushSA},
				{"artifacts", "repositories", "delete", "helios"},
				{"scheduler", "jobs", "delete", "helios-sweep"},
			} {
				only(t, r.calls, want...)
			}
			// The sweep goes first: it would call the services being deleted.
			sweep := slices.IndexFunc(r.calls, func(c call) bool { return c.is("scheduler", "jobs", "delete", "helios-sweep") })
			wantFlags(t, r.calls[sweep], map[string]string{"location": region})
			if services := slices.IndexFunc(r.calls, func(c call) bool { return c.is("run", "services", "delete") }); services < sweep {
				t.Errorf("a service is deleted (call %d) before the sweep's scheduler job (call %d)", services, sweep)
			}
			var bucketDeletes []call
			for _, call := range r.calls {
				if call.is("storage", "rm") || call.is("storage", "buckets", "delete") {
					bucketDeletes = append(bucketDeletes, call)
				}
			}
			if deleteBucket {
				if len(bucketDeletes) != 1 || !slices.Equal(bucketDeletes[0].words, []string{"storage", "rm", "gs://" + bucket + "/"}) {
					t.Errorf("DELETE_BUCKET=1: bucket deletes %v, want one storage rm --recursive gs://%s/", bucketDeletes, bucket)
				} else {
					wantFlags(t, bucketDeletes[0], map[string]string{"recursive": ""})
				}
			} else {
				if len(bucketDeletes) > 0 {
					t.Errorf("the bucket is deleted without DELETE_BUCKET=1: %v", bucketDeletes)
				}
				// The services' access to the kept bucket goes.
				removed := map[string]bool{}
				for _, call := range r.calls {
					if call.is("storage", "buckets", "remove-iam-policy-binding", "gs://"+bucket) {
						m, _ := call.flag("member")
						removed[strings.TrimPrefix(m, "serviceAccount:")] = true
					}
				}
				for _, sa := range []string{orchestratorSA, workerSA, stitcherSA} {
					if !removed[sa] {
						t.Errorf("destroy.sh leaves %s's bindings on the kept bucket", sa)
					}
				}
			}

			// Again: everything is gone, nothing more is deleted.
			again := c.run(t, "destroy.sh", env...)
			mustSucceed(t, "destroy.sh (again)", again)
			for _, call := range again.calls {
				if slices.Contains(call.words, "delete") || call.is("storage", "rm") {
					t.Errorf("destroy.sh again: %v: already gone", call)
				}
			}
		})
	}
}

// When gcloud cannot look (no account, an expired login, a missing
// permission, a project that is not there or not the user's), neither script
// may take its failure for "not there": destroy.sh would report a teardown
// that did not happen, deploy.sh would create what exists. Both stop with
// gcloud's message, a hint and a non-zero exit, having changed nothing.
func TestScriptsStopWhenGcloudCannotLook(t *testing.T) {
	for _, c := range []struct {
		fail, want, hint string
	}{
		{"auth", "You do not currently have an active account selected", "gcloud auth login"},
		{"permission", "PERMISSION_DENIED", "lacks a permission"},
		{"project", "does not have permission to access projects instance [" + project + "]", "lacks a permission"},
	} {
		for _, script := range []string{"destroy.sh", "deploy.sh"} {
			t.Run(c.fail+"/"+script, func(t *testing.T) {
				cl := newCloud(t)
				mustSucceed(t, "deploy.sh", cl.run(t, "deploy.sh", deployEnv()...))
				env := deployEnv("FAKE_GCLOUD_FAIL=" + c.fail)
				r := cl.run(t, script, env...)
				out := r.stdout + r.stderr
				if r.err == nil {
					t.Fatalf("%s exits 0 when gcloud answers %q:\n%s", script, c.fail, out)
				}
				if !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, c.hint) {
					t.Errorf("stderr does not pass on gcloud's %q and say %q:\n%s", c.want, c.hint, r.stderr)
				}
				for _, claim := range []string{"already gone", "Done.", "Deployed."} {
					if strings.Contains(out, claim) {
						t.Errorf("%s says %q when gcloud could not look:\n%s", script, claim, out)
					}
				}
				for _, call := range r.calls {
					if slices.Contains(call.words, "delete") || slices.Contains(call.words, "create") || call.is("storage", "rm") {
						t.Errorf("%s went on to %v", script, call)
					}
				}
			})
		}
	}
}

// Never deployed (or torn down before): every "not found" shape gcloud
// gives (NOT_FOUND, "Cannot find service", "gs://… not found: 404.") counts
// as gone, and destroy.sh finishes.
func TestDestroyNothingDeployed(t *testing.T) {
	c := newCloud(t)
	r := c.run(t, "destroy.sh", "PROJECT="+project, "REGION="+region)
	mustSucceed(t, "destroy.sh", r)
	if n := strings.Count(r.stdout, "already gone"); n < 15 {
		t.Errorf("%d resources reported gone, want every one:\n%s", n, r.stdout)
	}
	for _, call := range r.calls {
		if slices.Contains(call.words, "delete") || call.is("storage", "rm") {
			t.Errorf("nothing to delete, but %v", call)
		}
	}
}

// TestCallsParseWithGcloud hands every gcloud command the scripts make to the
// real Google Cloud CLI, with an empty configuration (no account) and, where
// `unshare -n` can make one, inside a network namespace with no network.
// gcloud parses the arguments, the IAM condition strings, the durations, the
// Cloud Build config and the service YAMLs (against the Cloud Run API's
// schema) before it asks for an account, so stopping at "no active account"
// means all of them are valid. Without a network namespace it only looks
// each flag up in the command's --help. It needs gcloud and takes minutes:
// HELIOS_CHECK_GCLOUD=1 runs it.
func TestCallsParseWithGcloud(t *testing.T) {
	if os.Getenv("HELIOS_CHECK_GCLOUD") != "1" {
		t.Skip("set HELIOS_CHECK_GCLOUD=1 to check the commands against the installed gcloud")
	}
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		t.Skip("gcloud is not installed")
	}
	c := newCloud(t)
	env := []string{"PROJECT=" + project, "REGION=" + region}
	var calls []call
	for _, r := range []result{
		c.run(t, "deploy.sh", env...), // builds the images
		c.run(t, "deploy.sh", deployEnv()...),
		c.run(t, "destroy.sh", env...),
		c.run(t, "deploy.sh", deployEnv()...),
		c.run(t, "destroy.sh", append(env, "DELETE_BUCKET=1")...),
	} {
		mustSucceed(t, "script", r)
		calls = append(calls, r.calls...)
	}

	// The files the scripts passed were temporary: use the stand-in's copies.
	var argvs [][]string
	seen := map[string]bool{}
	for _, call := range calls {
		argv := slices.Clone(call.argv)
		for i, a := range argv {
			switch {
			case strings.HasPrefix(a, "--lifecycle-file="):
				argv[i] = "--lifecycle-file=" + filepath.Join(c.state, "files", "lifecycle.json")
			case call.is("run", "services", "replace") && strings.HasSuffix(a, ".yaml"):
				argv[i] = filepath.Join(c.state, "files", fmt.Sprintf("replace-%d.yaml", call.line))
			}
		}
		if key := strings.Join(argv, "\x00"); !seen[key] {
			seen[key] = true
			argvs = append(argvs, argv)
		}
	}

	gcloudEnv := []string{
		"CLOUDSDK_CONFIG=" + t.TempDir(),
		"CLOUDSDK_CORE_CHECK_GCE_METADATA=false",
		"CLOUDSDK_CORE_DISABLE_PROMPTS=1",
		"CLOUDSDK_CORE_DISABLE_USAGE_REPORTING=true",
		"CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK=true",
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CLOUDSDK_") && !strings.HasPrefix(kv, "GOOGLE_") {
			gcloudEnv = append(gcloudEnv, kv)
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}

	if exec.Command("unshare", "-n", "true").Run() != nil {
		t.Log("no network namespace (unshare -n): checking flag names against --help only")
		checkFlagsInHelp(t, gcloud, gcloudEnv, argvs)
		return
	}
	for _, argv := range argvs {
		cmd := exec.Command("unshare", append([]string{"-n", gcloud}, argv...)...)
		cmd.Env, cmd.Dir = gcloudEnv, root
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), "You do not currently have an active account selected") {
			t.Errorf("gcloud %s:\n%s", strings.Join(argv, " "), out)
		}
	}
}

// checkFlagsInHelp looks every flag up in its command's --help.
func checkFlagsInHelp(t *testing.T, gcloud string, env []string, argvs [][]string) {
	t.Helper()
	verbs := []string{"describe", "create", "update", "delete", "list", "replace", "enable", "submit", "undelete", "rm",
		"add-iam-policy-binding", "remove-iam-policy-binding"}
	flags := map[string]map[string]bool{} // command path → flags used
	for _, argv := range argvs {
		call := parseCall(argv)
		i := slices.IndexFunc(call.words, func(w string) bool { return slices.Contains(verbs, w) })
		if i < 0 {
			t.Errorf("%v: no verb found", call)
			continue
		}
		// scheduler jobs create|update http: the flags are the target type's.
		if i+1 < len(call.words) && call.words[i+1] == "http" {
			i++
		}
		path := strings.Join(call.words[:i+1], " ")
		if flags[path] == nil {
			flags[path] = map[string]bool{}
		}
		for name := range call.flags {
			flags[path][name] = true
		}
	}
	ansi := regexp.MustCompile(`\x1b\[[0-9;]*m`)
	for path, names := range flags {
		cmd := exec.Command(gcloud, append(strings.Fields(path), "--help")...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("gcloud %s --help: %v\n%s", path, err, out)
			continue
		}
		help := ansi.ReplaceAllString(string(out), "")
		for name := range names {
			// Boolean flags are documented as --[no-]name.
			if !strings.Contains(help, "--"+name) && !strings.Contains(help, "--[no-]"+name) {
				t.Errorf("gcloud %s: --%s is not in its help", path, name)
			}
		}
	}
}

// checkEveryCall: every call names the project (nothing lands in whatever
// project gcloud is configured with), nothing is made public, and no role is
// granted on the whole project.
func checkEveryCall(t *testing.T, calls []call) {
	t.Helper()
	for _, call := range calls {
		if p, _ := call.flag("project"); p != project {
			t.Errorf("%v: --project=%s missing", call, project)
		}
		for _, a := range call.argv {
			if strings.Contains(a, "allUsers") || strings.Contains(a, "allAuthenticatedUsers") {
				t.Errorf("%v: public access", call)
			}
		}
		if call.is("projects", "add-iam-policy-binding") || call.is("projects", "set-iam-policy") {
			t.Errorf("%v: project-wide grant", call)
		}
		if slices.Contains(call.words, "set-iam-policy") {
			t.Errorf("%v: set-iam-policy replaces bindings others made", call)
		}
	}
}

// checkCreates: the fresh run creates each thing once (the stand-in would
// fail a second create anyway).
func checkCreates(t *testing.T, calls []call) {
	t.Helper()
	for _, want := range [][]string{
		{"artifacts", "repositories", "create", "helios"},
		{"iam", "service-accounts", "create", "helios-orchestrator"},
		{"iam", "service-accounts", "create", "helios-worker"},
		{"iam", "service-accounts", "create", "helios-stitcher"},
		{"iam", "service-accounts", "create", "helios-push"},
		{"storage", "buckets", "create", "gs://" + bucket},
		{"pubsub", "topics", "create", "helios-jobs"},
		{"pubsub", "topics", "create", "helios-jobs-dead"},
	} {
		only(t, calls, want...)
	}
	enable := only(t, calls, "services", "enable")
	for _, api := range []string{"run", "pubsub", "storage", "artifactregistry", "cloudbuild", "iamcredentials", "cloudscheduler"} {
		if !slices.Contains(enable.words, api+".googleapis.com") {
			t.Errorf("%v: %s.googleapis.com is not enabled", enable, api)
		}
	}
}

// service is the part of a Knative service definition deploy.sh sets.
// Unknown keys are refused when decoding, so a misspelt one fails the test.
type service struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec struct {
		Template struct {
			Metadata struct {
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				ServiceAccountName   string `yaml:"serviceAccountName"`
				ContainerConcurrency int    `yaml:"containerConcurrency"`
				TimeoutSeconds       int    `yaml:"timeoutSeconds"`
				Containers           []struct {
					Image   string   `yaml:"image"`
					Command []string `yaml:"command"`
					Ports   []struct {
						Name          string `yaml:"name"`
						ContainerPort int    `yaml:"containerPort"`
					} `yaml:"ports"`
					Resources struct {
						Limits map[string]string `yaml:"limits"`
					} `yaml:"resources"`
					Env []struct {
						Name      string `yaml:"name"`
						Value     string `yaml:"value"`
						ValueFrom *struct {
							SecretKeyRef struct {
								Name string `yaml:"name"`
								Key  string `yaml:"key"`
							} `yaml:"secretKeyRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func envOf(s service) map[string]string {
	env := map[string]string{}
	for _, e := range s.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	return env
}

// replaced decodes the files of this run's `run services replace` calls, by
// service name.
func replaced(t *testing.T, c *cloud, calls []call) map[string]service {
	t.Helper()
	docs := map[string]service{}
	for _, call := range calls {
		if !call.is("run", "services", "replace") {
			continue
		}
		if r, _ := call.flag("region"); r != region {
			t.Errorf("%v: --region=%s missing", call, region)
		}
		data := c.file(t, fmt.Sprintf("replace-%d.yaml", call.line))
		if bytes.Contains(data, []byte("${")) {
			t.Errorf("%v: placeholder left:\n%s", call, data)
		}
		var s service
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("%v: %v\n%s", call, err, data)
		}
		if _, dup := docs[s.Metadata.Name]; dup {
			t.Errorf("%s deployed twice in one run", s.Metadata.Name)
		}
		docs[s.Metadata.Name] = s
	}
	return docs
}

// wellKnownEnv are variables outside pkg/config a service may set.
var wellKnownEnv = []string{"GOMEMLIMIT", "GOMAXPROCS", "GOOGLE_CLOUD_PROJECT"}

// checkServices checks the services of one deployment; browser: with
// helios-browser-worker (BROWSER_WORKER=1).
func checkServices(t *testing.T, c *cloud, calls []call, maxWorkers int, bucket string, browser bool) {
	t.Helper()
	docs := replaced(t, c, calls)
	type limits struct {
		sa          string
		concurrency int
		cpu, memory string
	}
	want := map[string]limits{
		"helios-orchestrator": {orchestratorSA, 20, "1", "512Mi"},
		"helios-worker":       {workerSA, 1, "2", "4Gi"},
		"helios-stitcher":     {stitcherSA, 1, "2", "8Gi"},
		"helios-sweeper":      {orchestratorSA, 1, "1", "512Mi"},
	}
	if browser {
		// The worker's identity (the same bucket access) and the worker's
		// limits (the same price of a worker-second).
		want["helios-browser-worker"] = limits{workerSA, 1, "2", "4Gi"}
	}
	if len(docs) != len(want) {
		t.Fatalf("deployed %d services, want %d", len(docs), len(want))
	}
	for name, w := range want {
		s, ok := docs[name]
		if !ok {
			t.Errorf("%s was not deployed", name)
			continue
		}
		tmpl := s.Spec.Template
		if s.APIVersion != "serving.knative.dev/v1" || s.Kind != "Service" {
			t.Errorf("%s: %s %s, want a serving.knative.dev/v1 Service", name, s.APIVersion, s.Kind)
		}
		if tmpl.Spec.ServiceAccountName != w.sa {
			t.Errorf("%s: runs as %q, want its own %s", name, tmpl.Spec.ServiceAccountName, w.sa)
		}
		if got := tmpl.Metadata.Annotations["run.googleapis.com/execution-environment"]; got != "gen2" {
			t.Errorf("%s: execution environment %q, want gen2", name, got)
		}
		if got := s.Metadata.Annotations["run.googleapis.com/ingress"]; got != "all" {
			t.Errorf("%s: ingress %q, want all (with IAM)", name, got)
		}
		if got := s.Metadata.Annotations["run.googleapis.com/invoker-iam-disabled"]; got != "" && got != "false" {
			t.Errorf("%s: invoker IAM check disabled", name)
		}
		if got := s.Metadata.Labels["cloud.googleapis.com/location"]; got != region {
			t.Errorf("%s: location label %q, want %s", name, got, region)
		}
		if tmpl.Spec.ContainerConcurrency != w.concurrency {
			t.Errorf("%s: containerConcurrency %d, want %d", name, tmpl.Spec.ContainerConcurrency, w.concurrency)
		}
		if wantTimeout := cmp.Or(map[string]int{"helios-sweeper": 300}[name], 3600); tmpl.Spec.TimeoutSeconds != wantTimeout {
			t.Errorf("%s: timeoutSeconds %d, want %d", name, tmpl.Spec.TimeoutSeconds, wantTimeout)
		}
		if len(tmpl.Spec.Containers) != 1 {
			t.Errorf("%s: %d containers, want 1", name, len(tmpl.Spec.Containers))
			continue
		}
		ctr := tmpl.Spec.Containers[0]
		wantImage, wantCommand := image, []string{"/usr/local/bin/" + name}
		if name == "helios-sweeper" {
			wantCommand = []string{"/usr/local/bin/helios-orchestrator"} // the orchestrator's code
		}
		if name == "helios-browser-worker" {
			// The browser image's ENTRYPOINT is the worker (TestBrowserWorkerImage).
			wantImage, wantCommand = browserImage, nil
		}
		if ctr.Image != wantImage {
			t.Errorf("%s: image %q, want %q", name, ctr.Image, wantImage)
		}
		if !slices.Equal(ctr.Command, wantCommand) {
			t.Errorf("%s: command %q, want %q", name, ctr.Command, wantCommand)
		}
		if len(ctr.Ports) != 1 || ctr.Ports[0].ContainerPort != 8080 {
			t.Errorf("%s: ports %+v, want 8080", name, ctr.Ports)
		}
		if ctr.Resources.Limits["cpu"] != w.cpu || ctr.Resources.Limits["memory"] != w.memory {
			t.Errorf("%s: limits %v, want cpu %s memory %s", name, ctr.Resources.Limits, w.cpu, w.memory)
		}

		// Only variables pkg/config reads (or a few well-known ones), and
		// they must pass its validation as Cloud Run would start the service.
		env := envOf(s)
		for _, e := range ctr.Env {
			if !slices.Contains(config.Names, e.Name) && !slices.Contains(wellKnownEnv, e.Name) {
				t.Errorf("%s: environment variable %s is not one of pkg/config's", name, e.Name)
			}
		}
		cfg, err := config.FromEnv(func(k string) string {
			switch k {
			case config.EnvCloudRunService:
				return name
			case config.EnvPort:
				return "8080"
			}
			return env[k]
		})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if env[config.EnvStorageURL] != "gs://"+bucket {
			t.Errorf("%s: %s=%q", name, config.EnvStorageURL, env[config.EnvStorageURL])
		}
		if env[config.EnvLogLevel] != "info" || env[config.EnvAllowedCommands] == "" {
			t.Errorf("%s: log level %q, allowed commands %q", name, env[config.EnvLogLevel], env[config.EnvAllowedCommands])
		}

		switch name {
		case "helios-worker", "helios-browser-worker":
			ann := tmpl.Metadata.Annotations
			if ann["autoscaling.knative.dev/maxScale"] != strconv.Itoa(maxWorkers) {
				t.Errorf("%s maxScale %q, want %d", name, ann["autoscaling.knative.dev/maxScale"], maxWorkers)
			}
			if ann["run.googleapis.com/startup-cpu-boost"] != "true" {
				t.Errorf("%s: no startup CPU boost", name)
			}
		case "helios-stitcher":
			if got := tmpl.Metadata.Annotations["run.googleapis.com/cpu-throttling"]; got != "false" {
				t.Errorf("stitcher cpu-throttling %q, want \"false\": a stitch must finish after its caller stops waiting", got)
			}
		case "helios-sweeper":
			ann := tmpl.Metadata.Annotations
			if got := ann["run.googleapis.com/cpu-throttling"]; got != "true" {
				t.Errorf("sweeper cpu-throttling %q, want \"true\": billed per request, nothing between sweeps", got)
			}
			if ann["autoscaling.knative.dev/maxScale"] != "1" || ann["autoscaling.knative.dev/minScale"] != "" {
				t.Errorf("sweeper scale %q to %q, want 0 to 1", ann["autoscaling.knative.dev/minScale"], ann["autoscaling.knative.dev/maxScale"])
			}
			if cfg.RequestTimeout != time.Duration(tmpl.Spec.TimeoutSeconds)*time.Second || cfg.ContinueTopic != "projects/"+project+"/topics/helios-jobs" {
				t.Errorf("sweeper %s=%s (timeoutSeconds %d), %s=%q: a sweep hands jobs to the orchestrator through the topic",
					config.EnvRequestTimeout, cfg.RequestTimeout, tmpl.Spec.TimeoutSeconds, config.EnvContinueTopic, cfg.ContinueTopic)
			}
		case "helios-orchestrator":
			if got := tmpl.Metadata.Annotations["run.googleapis.com/cpu-throttling"]; got != "false" {
				t.Errorf("orchestrator cpu-throttling %q, want \"false\": its render loop needs CPU between requests", got)
			}
			if cfg.RequestTimeout != time.Duration(tmpl.Spec.TimeoutSeconds)*time.Second {
				t.Errorf("orchestrator %s=%s, but its timeoutSeconds is %d", config.EnvRequestTimeout, cfg.RequestTimeout, tmpl.Spec.TimeoutSeconds)
			}
			if cfg.Adapter != config.AdapterCloudRun || cfg.WorkerURL != serviceURL("helios-worker") || cfg.StitcherURL != serviceURL("helios-stitcher") {
				t.Errorf("orchestrator: adapter %q, worker %q, stitcher %q", cfg.Adapter, cfg.WorkerURL, cfg.StitcherURL)
			}
			// Present either way: "" (no browser worker) is pkg/config's unset.
			wantBrowser := ""
			if browser {
				wantBrowser = serviceURL("helios-browser-worker")
			}
			if v, ok := env[config.EnvBrowserWorkerURL]; !ok || v != wantBrowser || cfg.BrowserWorkerURL != wantBrowser {
				t.Errorf("orchestrator %s=%q (set: %v), want %q", config.EnvBrowserWorkerURL, v, ok, wantBrowser)
			}
			if cfg.Concurrency != maxWorkers {
				t.Errorf("orchestrator %s=%d, want the worker's max instances %d", config.EnvConcurrency, cfg.Concurrency, maxWorkers)
			}
			if cfg.ContinueTopic != "projects/"+project+"/topics/helios-jobs" {
				t.Errorf("orchestrator %s=%q", config.EnvContinueTopic, cfg.ContinueTopic)
			}
			// The sizes the cost is priced at are the services' limits.
			if cfg.Cost.Platform != cost.CloudRun {
				t.Errorf("orchestrator prices %q", cfg.Cost.Platform)
			}
			for service, fn := range map[string]string{"helios-orchestrator": job.FunctionOrchestrator, "helios-worker": job.FunctionWorker,
				"helios-browser-worker": job.FunctionBrowserWorker, "helios-stitcher": job.FunctionStitcher} {
				doc, ok := docs[service]
				if !ok {
					continue
				}
				limits := doc.Spec.Template.Spec.Containers[0].Resources.Limits
				cpus, _ := strconv.ParseFloat(limits["cpu"], 64)
				billing := cost.BillingRequest
				if doc.Spec.Template.Metadata.Annotations["run.googleapis.com/cpu-throttling"] == "false" {
					billing = cost.BillingInstance // CPU always allocated
				}
				if size := cfg.Cost.Sizes[fn]; size.CPU != cpus || size.MemoryMB != memoryMB(t, limits["memory"]) || cmp.Or(size.Billing, cost.BillingRequest) != billing {
					t.Errorf("%s=%v for %s; the service has limits %v and %s-based billing", config.EnvSizes, size, service, limits, billing)
				}
			}
		}
	}
}

// grant is one bucket binding: a service account, a role, a condition.
type grant struct {
	member, role, title, expression string
}

func bucketGrants(t *testing.T, calls []call) []grant {
	t.Helper()
	var grants []grant
	for _, call := range calls {
		if !call.is("storage", "buckets", "add-iam-policy-binding") {
			continue
		}
		if len(call.words) != 4 || call.words[3] != "gs://"+bucket {
			t.Errorf("%v: not on gs://%s", call, bucket)
		}
		member, _ := call.flag("member")
		g := grant{member: strings.TrimPrefix(member, "serviceAccount:")}
		g.role, _ = call.flag("role")
		condition, ok := call.flag("condition")
		if !ok {
			t.Errorf("%v: no --condition (None must be explicit)", call)
		}
		if condition != "None" {
			// KEY=VALUE pairs, separated by ';' after a ^;^ prefix, else ','.
			sep := ","
			if rest, ok := strings.CutPrefix(condition, "^;^"); ok {
				condition, sep = rest, ";"
			}
			for _, kv := range strings.Split(condition, sep) {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "title":
					g.title = v
				case "expression":
					g.expression = v
				case "description":
				default:
					t.Errorf("%v: condition field %q", call, k)
				}
			}
			if g.title == "" || g.expression == "" {
				t.Errorf("%v: a condition needs a title and an expression", call)
			}
		}
		grants = append(grants, g)
	}
	return grants
}

// checkBucketIAM evaluates the bucket bindings against the bucket's layout:
// each service reaches exactly the prefixes it uses.
func checkBucketIAM(t *testing.T, calls []call) {
	t.Helper()
	grants := bucketGrants(t, calls)
	lists := map[string]bool{}
	for _, g := range grants {
		switch g.role {
		case listerRole:
			if g.expression != "" {
				t.Errorf("%+v: listing is checked on the bucket, a condition on object names would block it", g)
			}
			lists[g.member] = true
		case "roles/storage.objectViewer", "roles/storage.objectUser", "roles/storage.objectCreator":
			if g.expression == "" {
				t.Errorf("%+v: object role without a condition: the whole bucket", g)
			}
		default:
			t.Errorf("%+v: role not allowed on the bucket", g)
		}
		if !slices.Contains([]string{orchestratorSA, workerSA, stitcherSA}, g.member) {
			t.Errorf("%+v: member is not one of the services", g)
		}
	}
	for _, sa := range []string{orchestratorSA, workerSA, stitcherSA} {
		if !lists[sa] {
			t.Errorf("%s cannot list the bucket", sa)
		}
	}

	// can reports whether sa may read or write the object, per the bindings.
	can := func(sa, write, object string) bool {
		name := "projects/_/buckets/" + bucket + "/objects/" + object
		for _, g := range grants {
			if g.member != sa || g.expression == "" {
				continue
			}
			reads := g.role == "roles/storage.objectViewer" || g.role == "roles/storage.objectUser"
			writes := g.role == "roles/storage.objectCreator" || g.role == "roles/storage.objectUser"
			if (write == "write" && !writes) || (write == "read" && !reads) {
				continue
			}
			ok, err := evalCondition(g.expression, name)
			if err != nil {
				t.Fatalf("%s: %v", g.expression, err)
			}
			if ok {
				return true
			}
		}
		return false
	}
	// The keys the functions use (pkg/job), and a few that must stay out of reach.
	objects := []string{
		layout.JobKey("demo"),
		layout.AssetsPrefix + "0123abcd.tar.gz",
		layout.SpecKey("demo"),
		layout.StatusKey("demo"),
		layout.LeaseKey("demo", 1),
		layout.CancelKey("demo"),
		layout.SegmentKey("demo", 0, 1, 1, "mp4"),
		layout.MarkerKey("demo", 0),
		layout.StitchLockKey("demo"),
		layout.DefaultOutputKey("demo", "mp4"),
		layout.OutputsPrefix + "demo/final.mp4",
		"elsewhere/renders/demo/chunks/x",
		// Only startsWith pins extract's template to the start of the name.
		"jobs/projects/_/buckets/" + bucket + "/objects/renders/demo/chunks/x",
		layout.ActiveKey("demo"),
		"actives/demo",
	}
	chunk := func(o string) bool { return strings.HasPrefix(o, layout.ChunksPrefix("demo")) }
	render := func(o string) bool { return strings.HasPrefix(o, "renders/") }
	jobs := func(o string) bool { return strings.HasPrefix(o, "jobs/") }
	outputs := func(o string) bool { return strings.HasPrefix(o, "outputs/") }
	assets := func(o string) bool { return strings.HasPrefix(o, "assets/") }
	active := func(o string) bool { return strings.HasPrefix(o, layout.ActivePrefix) }
	want := []struct {
		sa, access string
		allowed    func(string) bool
	}{
		// active/: the orchestrator's alone (the sweep's view of running jobs).
		{orchestratorSA, "read", func(o string) bool { return jobs(o) || render(o) || outputs(o) || active(o) }},
		{orchestratorSA, "write", func(o string) bool { return jobs(o) || render(o) || active(o) }},
		{workerSA, "read", func(o string) bool { return assets(o) || chunk(o) }},
		{workerSA, "write", chunk},
		// The stitcher reads segments; objectUser on renders/ and outputs/
		// (to write the video) cannot leave reading those out.
		{stitcherSA, "read", func(o string) bool { return render(o) || outputs(o) }},
		{stitcherSA, "write", func(o string) bool { return render(o) || outputs(o) }},
	}
	for _, w := range want {
		for _, o := range objects {
			if got := can(w.sa, w.access, o); got != w.allowed(o) {
				t.Errorf("%s may %s %s: %v, want %v", strings.Split(w.sa, "@")[0], w.access, o, got, w.allowed(o))
			}
		}
	}
}

// evalCondition evaluates the subset of CEL deploy.sh writes for object
// names: resource.name.startsWith("…"), resource.name.extract("…{x}…") != "",
// &&, || and parentheses. extract is taken as matching its prefix anywhere in
// the name (the looser reading), so a condition that relies on it alone to
// pin a prefix fails the tests.
func evalCondition(expr, name string) (bool, error) {
	tokens := regexp.MustCompile(`\s*(\|\||&&|\(|\)|!=|""|resource\.name\.(?:startsWith|extract)\("(?:[^"\\]|\\.)*"\))\s*`).
		FindAllStringSubmatchIndex(expr, -1)
	var toks []string
	end := 0
	for _, m := range tokens {
		if m[0] != end {
			return false, fmt.Errorf("cannot read %q", expr[end:m[0]])
		}
		toks = append(toks, expr[m[2]:m[3]])
		end = m[1]
	}
	if end != len(expr) {
		return false, fmt.Errorf("cannot read %q", expr[end:])
	}
	pos := 0
	peek := func() string {
		if pos < len(toks) {
			return toks[pos]
		}
		return ""
	}
	var or func() (bool, error)
	atom := func() (bool, error) {
		tok := peek()
		pos++
		switch {
		case tok == "(":
			v, err := or()
			if err != nil {
				return false, err
			}
			if peek() != ")" {
				return false, fmt.Errorf("missing ) in %q", expr)
			}
			pos++
			return v, nil
		case strings.HasPrefix(tok, "resource.name.startsWith("):
			arg, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(tok, "resource.name.startsWith("), ")"))
			return err == nil && strings.HasPrefix(name, arg), err
		case strings.HasPrefix(tok, "resource.name.extract("):
			arg, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(tok, "resource.name.extract("), ")"))
			if err != nil {
				return false, err
			}
			if peek() != "!=" || pos+1 >= len(toks) || toks[pos+1] != `""` {
				return false, fmt.Errorf("extract must be compared with != \"\" in %q", expr)
			}
			pos += 2
			before, rest, ok := strings.Cut(arg, "{")
			_, after, ok2 := strings.Cut(rest, "}")
			if !ok || !ok2 {
				return false, fmt.Errorf("extract template %q has no {placeholder}", arg)
			}
			i := strings.Index(name, before)
			if i < 0 {
				return false, nil
			}
			value, _, found := strings.Cut(name[i+len(before):], after)
			return found && value != "", nil
		}
		return false, fmt.Errorf("unexpected %q in %q", tok, expr)
	}
	and := func() (bool, error) {
		v, err := atom()
		for err == nil && peek() == "&&" {
			pos++
			var w bool
			w, err = atom()
			v = v && w
		}
		return v, err
	}
	or = func() (bool, error) {
		v, err := and()
		for err == nil && peek() == "||" {
			pos++
			var w bool
			w, err = and()
			v = v || w
		}
		return v, err
	}
	v, err := or()
	if err == nil && pos != len(toks) {
		err = fmt.Errorf("trailing %q in %q", toks[pos:], expr)
	}
	return v, err
}

func TestEvalCondition(t *testing.T) {
	name := "projects/_/buckets/b/objects/renders/j/chunks/1.mp4"
	for expr, want := range map[string]bool{
		`resource.name.startsWith("projects/_/buckets/b/objects/renders/")`:                                                   true,
		`resource.name.startsWith("projects/_/buckets/b/objects/jobs/")`:                                                      false,
		`resource.name.extract("projects/_/buckets/b/objects/renders/{id}/chunks/") != ""`:                                    true,
		`resource.name.extract("projects/_/buckets/b/objects/renders/{id}/status/") != ""`:                                    false,
		`resource.name.startsWith("x") || (resource.name.startsWith("projects/") && resource.name.startsWith("projects/_/"))`: true,
		`resource.name.startsWith("projects/") && resource.name.startsWith("x")`:                                              false,
	} {
		if got, err := evalCondition(expr, name); err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", expr, got, err, want)
		}
	}
	if _, err := evalCondition(`resource.type == "x"`, name); err == nil {
		t.Error("an unknown expression is not refused")
	}
}

// checkInvokers: run.invoker only where one service calls another; browser:
// the orchestrator calls helios-browser-worker too.
func checkInvokers(t *testing.T, calls []call, browser bool) {
	t.Helper()
	allowed := map[[2]string]bool{
		{orchestratorSA, "helios-worker"}:   false,
		{orchestratorSA, "helios-stitcher"}: false,
		{pushSA, "helios-orchestrator"}:     false,
		{pushSA, "helios-sweeper"}:          false,
	}
	if browser {
		allowed[[2]string{orchestratorSA, "helios-browser-worker"}] = false
	}
	for _, call := range calls {
		if !slices.ContainsFunc(call.argv, func(a string) bool { return strings.Contains(a, "run.invoker") }) {
			continue
		}
		role, _ := call.flag("role")
		member, _ := call.flag("member")
		if !call.is("run", "services", "add-iam-policy-binding") || len(call.words) != 4 || role != "roles/run.invoker" {
			t.Errorf("%v: run.invoker granted outside a service's own policy", call)
			continue
		}
		pair := [2]string{strings.TrimPrefix(member, "serviceAccount:"), call.words[3]}
		if _, ok := allowed[pair]; !ok || !strings.HasPrefix(member, "serviceAccount:") {
			t.Errorf("%v: %s may not invoke %s", call, member, call.words[3])
		}
		allowed[pair] = true
	}
	for pair, seen := range allowed {
		if !seen {
			t.Errorf("%s is not allowed to invoke %s", pair[0], pair[1])
		}
	}
	for _, call := range calls {
		if call.is("run", "services", "add-iam-policy-binding") {
			if role, _ := call.flag("role"); role != "roles/run.invoker" {
				t.Errorf("%v: only run.invoker belongs on a service", call)
			}
		}
	}
}

// checkOtherIAM: token creation, publishing and subscribing, each on one
// resource for one identity.
func checkOtherIAM(t *testing.T, calls []call) {
	t.Helper()
	type binding struct{ resource, member, role string }
	want := map[binding]bool{
		{orchestratorSA, "serviceAccount:" + orchestratorSA, "roles/iam.serviceAccountTokenCreator"}: false,
		{pushSA, "serviceAccount:" + pubsubAgent, "roles/iam.serviceAccountTokenCreator"}:            false,
		{"helios-jobs", "serviceAccount:" + orchestratorSA, "roles/pubsub.publisher"}:                false,
		{"helios-jobs-dead", "serviceAccount:" + pubsubAgent, "roles/pubsub.publisher"}:              false,
		{"helios-jobs-push", "serviceAccount:" + pubsubAgent, "roles/pubsub.subscriber"}:             false,
	}
	for _, call := range calls {
		if !slices.Contains(call.words, "add-iam-policy-binding") || call.is("storage", "buckets") || call.is("run", "services") {
			continue
		}
		if call.is("secrets") {
			continue // the webhook key's, with WEBHOOK_SECRET (TestDeployWebhookSecret)
		}
		if !call.is("iam", "service-accounts") && !call.is("pubsub", "topics") && !call.is("pubsub", "subscriptions") {
			t.Errorf("%v: unexpected binding", call)
			continue
		}
		member, _ := call.flag("member")
		role, _ := call.flag("role")
		b := binding{call.words[len(call.words)-1], member, role}
		if _, ok := want[b]; !ok {
			t.Errorf("%v: unexpected binding", call)
		}
		want[b] = true
	}
	for b, seen := range want {
		if !seen {
			t.Errorf("missing binding: %s on %s for %s", b.role, b.resource, b.member)
		}
	}
}

func checkListerPermissions(t *testing.T, c call) {
	t.Helper()
	perms, _ := c.flag("permissions")
	got := strings.Split(perms, ",")
	slices.Sort(got)
	if !slices.Equal(got, []string{"storage.buckets.get", "storage.objects.list"}) {
		t.Errorf("%v: permissions %v, want storage.objects.list and storage.buckets.get only", c, got)
	}
}

func checkPushSubscription(t *testing.T, c call, create bool) {
	t.Helper()
	orchestrator := serviceURL("helios-orchestrator")
	want := map[string]string{
		"push-endpoint":              orchestrator + "/",
		"push-auth-service-account":  pushSA,
		"push-auth-token-audience":   orchestrator,
		"ack-deadline":               "600",
		"min-retry-delay":            "10s",
		"max-retry-delay":            "600s",
		"dead-letter-topic":          "helios-jobs-dead",
		"max-delivery-attempts":      "10",
		"message-retention-duration": "7d",
		"expiration-period":          "never",
	}
	if create {
		want["topic"] = "helios-jobs"
	}
	wantFlags(t, c, want)
}

// checkSweepJob: one Cloud Scheduler HTTP job, created on a fresh
// deployment and updated on a re-run, POSTs {} as JSON to the
// orchestrator's /sweep every 5 minutes with an identity token of
// helios-push (which holds run.invoker on the orchestrator) for the
// orchestrator's URL.
func checkSweepJob(t *testing.T, calls []call, create bool, location string) {
	t.Helper()
	verb, headers := "update", "update-headers"
	if create {
		verb, headers = "create", "headers"
	}
	var jobs []call
	for _, c := range calls {
		if c.is("scheduler", "jobs") && !c.is("scheduler", "jobs", "describe") {
			jobs = append(jobs, c)
		}
	}
	if len(jobs) != 1 || !slices.Equal(jobs[0].words, []string{"scheduler", "jobs", verb, "http", "helios-sweep"}) {
		t.Fatalf("scheduler calls %v, want one: gcloud scheduler jobs %s http helios-sweep", jobs, verb)
	}
	c := jobs[0]
	// The sweeper, not the orchestrator: its instances are billed per
	// instance, and a sweep every 5 minutes would keep one up for good.
	sweeper := serviceURL("helios-sweeper")
	wantFlags(t, c, map[string]string{
		"location":                   location,
		"schedule":                   "*/5 * * * *",
		"uri":                        sweeper + "/sweep",
		"oidc-service-account-email": pushSA,
		"oidc-token-audience":        sweeper,
		headers:                      "Content-Type=application/json",
	})
	if m, _ := c.flag("http-method"); !strings.EqualFold(m, "POST") {
		t.Errorf("%v: --http-method=%s, want POST", c, m)
	}
	var body map[string]any
	if b, ok := c.flag("message-body"); !ok || json.Unmarshal([]byte(b), &body) != nil || len(body) != 0 {
		t.Errorf("%v: --message-body=%q, want {}", c, b)
	}
	if d, _ := c.flag("attempt-deadline"); d == "" {
		t.Errorf("%v: no --attempt-deadline", c)
	}
	for _, name := range []string{"oauth-service-account-email", "headers", "update-headers"} {
		if _, ok := c.flag(name); ok && name != headers {
			t.Errorf("%v: --%s", c, name)
		}
	}
}

func checkLifecycle(t *testing.T, c *cloud, days int) {
	t.Helper()
	var lc struct {
		Rule []struct {
			Action struct {
				Type string `json:"type"`
			} `json:"action"`
			Condition map[string]any `json:"condition"`
		} `json:"rule"`
	}
	if err := json.Unmarshal(c.file(t, "lifecycle.json"), &lc); err != nil {
		t.Fatalf("lifecycle file: %v", err)
	}
	var deletes, aborts int
	for _, r := range lc.Rule {
		switch r.Action.Type {
		case "Delete":
			deletes++
			// Only objects with a custom time (segments) may expire.
			if r.Condition["daysSinceCustomTime"] != float64(days) {
				t.Errorf("delete rule %v: want daysSinceCustomTime %d", r.Condition, days)
			}
			for k := range r.Condition {
				if k != "daysSinceCustomTime" && k != "matchesPrefix" {
					t.Errorf("delete rule %v: condition %s would widen or change it", r.Condition, k)
				}
			}
		case "AbortIncompleteMultipartUpload":
			aborts++
			if len(r.Condition) != 1 || r.Condition["age"] != float64(1) {
				t.Errorf("abort rule %v: want age 1", r.Condition)
			}
		default:
			t.Errorf("lifecycle action %q", r.Action.Type)
		}
	}
	if deletes != 1 || aborts != 1 {
		t.Errorf("lifecycle: %d delete and %d abort rules, want 1 and 1", deletes, aborts)
	}
}

// checkOrder: the worker, the stitcher (and the browser worker) are
// deployed and their URLs read before the orchestrator is deployed with them;
// the push subscription points at the deployed orchestrator.
func checkOrder(t *testing.T, calls []call, browser bool) {
	t.Helper()
	index := func(match func(call) bool) int { return slices.IndexFunc(calls, match) }
	describe := func(name string) func(call) bool {
		return func(c call) bool { return c.is("run", "services", "describe", name) }
	}
	// render names the file it writes after the YAML it reads.
	orchestrator := index(func(c call) bool {
		return c.is("run", "services", "replace") && len(c.words) > 3 && filepath.Base(c.words[3]) == "orchestrator.yaml"
	})
	w, s := index(describe("helios-worker")), index(describe("helios-stitcher"))
	if orchestrator < 0 || w < 0 || s < 0 || w > orchestrator || s > orchestrator {
		t.Errorf("the orchestrator (call %d) must be deployed after the worker's and stitcher's URLs are read (calls %d, %d)", orchestrator, w, s)
	}
	if b := index(describe("helios-browser-worker")); browser && (b < 0 || b > orchestrator) {
		t.Errorf("the orchestrator (call %d) must be deployed after the browser worker's URL is read (call %d)", orchestrator, b)
	}
	if o := index(describe("helios-orchestrator")); o < orchestrator {
		t.Errorf("the orchestrator's URL is read (call %d) before it is deployed (call %d)", o, orchestrator)
	}
	push := index(func(c call) bool {
		return c.is("pubsub", "subscriptions") && slices.Contains(c.words, "helios-jobs-push") && c.flags["push-endpoint"] != nil
	})
	if push < orchestrator {
		t.Errorf("the push subscription (call %d) is set before the orchestrator exists (call %d)", push, orchestrator)
	}
	sweep := index(func(c call) bool {
		return c.is("scheduler", "jobs") && slices.Contains(c.words, "helios-sweep") && c.flags["uri"] != nil
	})
	invoker := index(func(c call) bool {
		m, _ := c.flag("member")
		return c.is("run", "services", "add-iam-policy-binding", "helios-orchestrator") && m == "serviceAccount:"+pushSA
	})
	if sweep < orchestrator || sweep < invoker {
		t.Errorf("the sweep job (call %d) is set before the orchestrator exists (call %d) or helios-push may invoke it (call %d)", sweep, orchestrator, invoker)
	}
}

// only returns the one call that starts with cmd, failing if there is not
// exactly one.
func only(t *testing.T, calls []call, cmd ...string) call {
	t.Helper()
	var found []call
	for _, c := range calls {
		if c.is(cmd...) {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("gcloud %s: called %d times, want once: %v", strings.Join(cmd, " "), len(found), found)
	}
	return found[0]
}

func wantFlags(t *testing.T, c call, want map[string]string) {
	t.Helper()
	for name, value := range want {
		if got, ok := c.flag(name); !ok || got != value {
			t.Errorf("%v: --%s=%q, want %q", c, name, got, value)
		}
	}
}

// TestDockerfile keeps the image and the service definitions in step: the
// builder's Go is go.mod's, the runtime is not root, and every command a
// service runs is a binary the image builds and installs. (No Docker engine
// is needed; building the image is Cloud Build's job.)
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := string(data)
	gomod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	if want := "FROM golang:" + string(m[1]) + "-bookworm AS build"; !strings.Contains(dockerfile, want) {
		t.Errorf("Dockerfile: no %q (go.mod says go %s)", want, m[1])
	}
	for _, want := range []string{"FROM debian:bookworm-slim", "USER 10001:10001", "CGO_ENABLED=0", "-trimpath",
		"--no-install-recommends ffmpeg ca-certificates", "rm -rf /var/lib/apt/lists/*", "--uid 10001"} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("Dockerfile: no %q", want)
		}
	}
	if strings.Contains(dockerfile, "ENTRYPOINT") {
		t.Error("Dockerfile: an ENTRYPOINT would run before each service's command")
	}
	built := regexp.MustCompile(`for fn in ([a-z ]+); do`).FindStringSubmatch(dockerfile)
	installed := regexp.MustCompile(`COPY --from=build ((?:/out/helios-[a-z]+ )+)/usr/local/bin/`).FindStringSubmatch(dockerfile)
	if built == nil || installed == nil {
		t.Fatalf("Dockerfile: cannot find the build loop or the COPY of the binaries")
	}
	for _, name := range []string{"orchestrator", "worker", "stitcher"} {
		if !slices.Contains(strings.Fields(built[1]), name) {
			t.Errorf("Dockerfile does not build %s", name)
		}
		if !slices.Contains(strings.Fields(installed[1]), "/out/helios-"+name) {
			t.Errorf("Dockerfile does not install helios-%s", name)
		}
		if _, err := os.Stat(filepath.Join("..", "..", "functions", name)); err != nil {
			t.Errorf("functions/%s: %v", name, err)
		}
		yml, err := os.ReadFile(name + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		if want := `command: ["/usr/local/bin/helios-` + name + `"]`; !strings.Contains(string(yml), want) {
			t.Errorf("%s.yaml: no %s", name, want)
		}
	}
}

// TestBrowserWorkerImage keeps the browser worker's recipe, its Dockerfile
// and browser-worker.yaml in step: the recipe builds that Dockerfile for
// linux/amd64 with BuildKit (for the Dockerfile.dockerignore beside it), and
// the service runs the image's ENTRYPOINT, which must be the worker.
func TestBrowserWorkerImage(t *testing.T) {
	data, err := os.ReadFile("browser-worker.cloudbuild.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var recipe struct {
		Steps []struct {
			Name string   `yaml:"name"`
			Env  []string `yaml:"env"`
			Args []string `yaml:"args"`
		} `yaml:"steps"`
		Images  []string `yaml:"images"`
		Timeout string   `yaml:"timeout"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&recipe); err != nil {
		t.Fatalf("browser-worker.cloudbuild.yaml: %v", err)
	}
	if len(recipe.Steps) != 1 || !slices.Equal(recipe.Images, []string{"${_IMAGE}"}) {
		t.Fatalf("browser-worker.cloudbuild.yaml: %d steps, images %v; want one build of ${_IMAGE}", len(recipe.Steps), recipe.Images)
	}
	step := recipe.Steps[0]
	if !slices.Contains(step.Env, "DOCKER_BUILDKIT=1") {
		t.Errorf("browser-worker.cloudbuild.yaml: no DOCKER_BUILDKIT=1: Dockerfile.dockerignore would be ignored")
	}
	args := strings.Join(step.Args, " ")
	for _, want := range []string{"build ", "--platform=linux/amd64", "-f infra/browser-worker/Dockerfile", "-t ${_IMAGE}"} {
		if !strings.Contains(args, want) {
			t.Errorf("browser-worker.cloudbuild.yaml: args %q lack %q", args, want)
		}
	}
	if step.Args[len(step.Args)-1] != "." {
		t.Errorf("browser-worker.cloudbuild.yaml: the context must be the repository root (.), not %q", step.Args[len(step.Args)-1])
	}
	dockerfile := filepath.Join("..", "browser-worker", "Dockerfile")
	data, err = os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	if want := `ENTRYPOINT ["/usr/local/bin/helios-worker"]`; !strings.Contains(string(data), want) {
		t.Errorf("%s: no %s (browser-worker.yaml runs the ENTRYPOINT)", dockerfile, want)
	}
	if _, err := os.Stat(dockerfile + ".dockerignore"); err != nil {
		t.Errorf("%v: without it the build context carries node_modules and the local Chromium", err)
	}
}

// uploadSkipped: the renderer's directories that stay out of the upload, its
// node_modules and its local Chromium (hundreds of MB; the browser worker's
// image installs its own). rendererSources lists the rest, which the image
// copies.
var uploadSkipped = []string{"node_modules", ".browser", ".browser.tmp"}

func rendererSources(t *testing.T) []string {
	t.Helper()
	root := filepath.Join("..", "..")
	var files []string
	err := filepath.WalkDir(filepath.Join(root, "renderers", "helios"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && slices.Contains(uploadSkipped, d.Name()) {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, err := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"package.json", "package-lock.json", "helios.mjs"} {
		if !slices.Contains(files, "renderers/helios/"+want) {
			t.Fatalf("renderers/helios/%s not found", want)
		}
	}
	return files
}

// TestGcloudignore reads gcloudignore as gcloud does (gitignore syntax) for
// the patterns it holds: the renderer's sources are uploaded (a pattern
// without a leading or inner / matches at any depth: bin/ would drop
// renderers/helios/bin), and its node_modules and local Chromium are not.
// TestUploadWithGcloud asks gcloud itself.
func TestGcloudignore(t *testing.T) {
	data, err := os.ReadFile("gcloudignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			if strings.HasPrefix(line, "!") {
				t.Fatalf("gcloudignore: %q: negations are beyond this test", line)
			}
			patterns = append(patterns, line)
		}
	}
	// ignored: p (a file, or a directory when dir) is left out.
	ignored := func(p string, dir bool) bool {
		parts := strings.Split(p, "/")
		for _, pat := range patterns {
			dirOnly := strings.HasSuffix(pat, "/")
			pat = strings.TrimSuffix(pat, "/")
			anchored := strings.Contains(pat, "/")
			pat = strings.TrimPrefix(pat, "/")
			n := strings.Count(pat, "/") + 1
			for i := range parts {
				// A pattern matches a path or one of its parent directories;
				// anchored ones only from the root.
				for start := 0; start <= i; start++ {
					if (anchored && start > 0) || i-start+1 != n {
						continue
					}
					isDir := i < len(parts)-1 || dir
					if ok, _ := path.Match(pat, strings.Join(parts[start:i+1], "/")); ok && (isDir || !dirOnly) {
						return true
					}
				}
			}
		}
		return false
	}
	for _, f := range rendererSources(t) {
		if ignored(f, false) {
			t.Errorf("gcloudignore leaves out %s: the browser worker's image needs it", f)
		}
	}
	for _, name := range uploadSkipped {
		if p := "renderers/helios/" + name; !ignored(p, true) {
			t.Errorf("gcloudignore uploads %s/", p)
		}
	}
	for _, p := range []string{".git", "bin", "out", "infra/cdk/node_modules"} {
		if !ignored(p, true) {
			t.Errorf("gcloudignore uploads %s/", p)
		}
	}
}

// TestUploadWithGcloud lists what `gcloud builds submit` would upload with
// gcloudignore, through gcloud's own reading of it, on a copy of the
// checkout's tree (empty files; one file in each directory that must stay
// out). It needs gcloud: HELIOS_CHECK_GCLOUD=1 runs it.
func TestUploadWithGcloud(t *testing.T) {
	if os.Getenv("HELIOS_CHECK_GCLOUD") != "1" {
		t.Skip("set HELIOS_CHECK_GCLOUD=1 to check the upload with the installed gcloud")
	}
	gcloud, err := exec.LookPath("gcloud")
	if err != nil {
		t.Skip("gcloud is not installed")
	}
	root := filepath.Join("..", "..")
	tree := t.TempDir()
	var kept, left []string
	touch := func(rel string) {
		p := filepath.Join(tree, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() && (slices.Contains(uploadSkipped, d.Name()) || rel == ".git") {
			touch(rel + "/x")
			left = append(left, rel+"/x")
			return filepath.SkipDir
		}
		if !d.IsDir() {
			touch(rel)
			if strings.HasPrefix(rel, "renderers/helios/") || strings.HasPrefix(rel, "infra/browser-worker/") ||
				strings.HasPrefix(rel, "functions/worker/") || rel == "go.mod" || rel == "go.sum" {
				kept = append(kept, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"bin/helios", "out/x"} {
		touch(rel)
		left = append(left, rel)
	}
	ignore, err := os.ReadFile("gcloudignore")
	if err != nil {
		t.Fatal(err)
	}
	// deploy.sh passes --ignore-file; this command reads .gcloudignore.
	if err := os.WriteFile(filepath.Join(tree, ".gcloudignore"), ignore, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gcloud, "meta", "list-files-for-upload", tree)
	cmd.Env = append(os.Environ(), "CLOUDSDK_CONFIG="+t.TempDir(), "CLOUDSDK_CORE_DISABLE_PROMPTS=1",
		"CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK=true", "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING=true")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gcloud meta list-files-for-upload: %v\n%s", err, out)
	}
	uploaded := map[string]bool{}
	// Paths relative to the directory (absolute in some versions).
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		p := strings.TrimSpace(line)
		if rel, err := filepath.Rel(tree, p); err == nil && filepath.IsAbs(p) {
			p = rel
		}
		uploaded[filepath.ToSlash(p)] = true
	}
	if !slices.Contains(kept, "renderers/helios/package.json") {
		t.Fatalf("the renderer's sources were not found (kept: %v)", kept)
	}
	for _, rel := range kept {
		if !uploaded[rel] {
			t.Errorf("%s is not uploaded", rel)
		}
	}
	for _, rel := range left {
		if uploaded[rel] {
			t.Errorf("%s is uploaded", rel)
		}
	}
}

// memoryMB reads a Kubernetes quantity of memory (512Mi, 4Gi) in MB.
func memoryMB(t *testing.T, q string) int {
	t.Helper()
	for suffix, mb := range map[string]int{"Mi": 1, "Gi": 1024} {
		if n, ok := strings.CutSuffix(q, suffix); ok {
			v, err := strconv.Atoi(n)
			if err == nil {
				return v * mb
			}
		}
	}
	t.Fatalf("memory %q: expected Mi or Gi", q)
	return 0
}

// WEBHOOK_SECRET gives the orchestrator the key that signs webhooks from
// Secret Manager (its latest version, as HELIOS_WEBHOOK_SECRET), and lets
// it read that secret and no other; without it there is neither.
func TestDeployWebhookSecret(t *testing.T) {
	for _, secret := range []string{"", "helios-webhook"} {
		c := newCloud(t)
		r := c.run(t, "deploy.sh", deployEnv("WEBHOOK_SECRET="+secret)...)
		mustSucceed(t, "deploy.sh WEBHOOK_SECRET="+secret, r)
		var ref string
		for _, e := range replaced(t, c, r.calls)["helios-orchestrator"].Spec.Template.Spec.Containers[0].Env {
			if e.Name == config.EnvWebhookSecret {
				if e.ValueFrom == nil || e.Value != "" || e.ValueFrom.SecretKeyRef.Key != "latest" {
					t.Errorf("%s is not read from Secret Manager: %+v", e.Name, e)
					continue
				}
				ref = e.ValueFrom.SecretKeyRef.Name
			}
		}
		var grants []call
		for _, call := range r.calls {
			if call.is("secrets") {
				grants = append(grants, call)
			}
		}
		if secret == "" {
			if ref != "" || len(grants) != 0 {
				t.Errorf("without WEBHOOK_SECRET: secret %q, calls %v", ref, grants)
			}
			continue
		}
		if ref != secret {
			t.Errorf("HELIOS_WEBHOOK_SECRET from secret %q, want %q", ref, secret)
		}
		if len(grants) != 1 || !grants[0].is("secrets", "add-iam-policy-binding", secret) {
			t.Fatalf("secret calls %v; want one binding on %s", grants, secret)
		}
		wantFlags(t, grants[0], map[string]string{"member": "serviceAccount:" + orchestratorSA, "role": "roles/secretmanager.secretAccessor"})
	}
	c := newCloud(t)
	if r := c.run(t, "deploy.sh", deployEnv("WEBHOOK_SECRET=no/such name")...); r.err == nil || !strings.Contains(r.stderr, "WEBHOOK_SECRET=no/such name: expected the name of a Secret Manager secret") || len(r.calls) > 0 {
		t.Errorf("a bad secret name: %v\n%s (%d gcloud calls)", r.err, r.stderr, len(r.calls))
	}
}

// RENDER_ORIGINS gives both workers the origins they fetch for rendered
// pages (HELIOS_RENDER_ORIGINS), and no other service; without it no
// service has the variable; a bad value stops before any call.
func TestDeployRenderOrigins(t *testing.T) {
	const origins = "https://fonts.googleapis.com,https://fonts.gstatic.com"
	for _, value := range []string{"", origins} {
		c := newCloud(t)
		r := c.run(t, "deploy.sh", deployEnv("RENDER_ORIGINS="+value)...)
		mustSucceed(t, "deploy.sh RENDER_ORIGINS="+value, r)
		for name, svc := range replaced(t, c, r.calls) {
			got := ""
			for _, e := range svc.Spec.Template.Spec.Containers[0].Env {
				if e.Name == config.EnvRenderOrigins {
					got = e.Value
				}
			}
			want := ""
			if value != "" && (name == "helios-worker" || name == "helios-browser-worker") {
				want = origins
			}
			if got != want {
				t.Errorf("RENDER_ORIGINS=%q: %s has %s=%q, want %q", value, name, config.EnvRenderOrigins, got, want)
			}
		}
	}
	c := newCloud(t)
	if r := c.run(t, "deploy.sh", deployEnv("RENDER_ORIGINS=fonts.googleapis.com")...); r.err == nil || !strings.Contains(r.stderr, "RENDER_ORIGINS=fonts.googleapis.com: expected comma-separated origins") || len(r.calls) > 0 {
		t.Errorf("a bad origin: %v\n%s (%d gcloud calls)", r.err, r.stderr, len(r.calls))
	}
}
