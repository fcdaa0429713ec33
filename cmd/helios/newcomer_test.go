package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/compute/metadata"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
)

// Exit codes and small messages a newcomer meets (issue 13, point 6).
func TestUsageMistakes(t *testing.T) {
	spec := writeSpec(t, testkit.NativeSpec("mistakes", 4, 2))
	dir := t.TempDir()
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		wantCode int
		want     string // in stderr
	}{
		{"unknown subcommand", nil, []string{"job", "rn", spec}, exitUsage, `unknown command "rn" for "helios job"`},
		{"long flag with one dash", nil, []string{"job", "run", "-out", "v.mp4", spec}, exitUsage, "-out: long flags take two dashes: --out"},
		{"--out names a directory by its slash", nil, []string{"job", "run", spec, "--out", "my/", "--storage", dir}, exitUsage, "--out my/ is a directory: give a file path, such as my/video.mp4"},
		{"--out names an existing directory", nil, []string{"job", "run", spec, "--out", dir, "--storage", dir}, exitUsage, "is a directory"},
		{"the renderer's command", nil, []string{"render", "comp.html", "-o", "part_0.mov", "--start-frame", "0"}, exitUsage, "is the Helios renderer's command, not this CLI's"},
		{"--assets names a file", nil, []string{"job", "run", spec, "--out", filepath.Join(dir, "v.mp4"), "--storage", dir, "--assets", spec}, exitUsage, "--assets: " + spec + " is not a directory"},
		{"--id not an id", nil, []string{"job", "run", spec, "--out", filepath.Join(dir, "v.mp4"), "--storage", dir, "--id", "a b"}, exitUsage, `--id "a b": must be`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if home, ok := tt.env["HOME"]; ok {
				t.Setenv("HOME", home) // no ~/.aws/config naming a region
			}
			r := helios(t, tt.env, tt.args...)
			if r.code != tt.wantCode || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tt.wantCode, tt.want)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	r := helios(t, nil, "--version")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "helios version ") {
		t.Errorf("--version: exit %d, %q", r.code, r.stdout)
	}
}

// After a job is done: running it again says the output was only copied;
// the video gets the mode cp would give it; watch prints where the video
// is; cancel says there is nothing to cancel (and does not leave a cancel
// request that would stop a later run).
func TestAfterTheJobIsDone(t *testing.T) {
	testkit.RequireFFmpeg(t)
	storage := t.TempDir()
	spec := writeSpec(t, testkit.NativeSpec("finished", 4, 2))
	out := filepath.Join(t.TempDir(), "v.mp4")
	if r := helios(t, nil, "job", "run", spec, "--out", out, "--storage", storage); r.code != exitOK {
		t.Fatalf("run: exit %d %s", r.code, r.stderr)
	}
	umask := syscall.Umask(0)
	syscall.Umask(umask)
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o666&^os.FileMode(umask) {
		t.Errorf("output mode %v (%v), want %v", fi.Mode().Perm(), err, 0o666&^os.FileMode(umask))
	}

	r := helios(t, nil, "job", "run", spec, "--out", out, "--storage", storage)
	if r.code != exitOK || !strings.Contains(r.stdout, "already rendered at") || !strings.Contains(r.stdout, "copied its output") {
		t.Errorf("second run: exit %d\n%s", r.code, r.stdout)
	}

	r = helios(t, nil, "job", "watch", "finished", "--storage", storage)
	if want := filepath.Join(storage, "renders", "finished", "output.mp4"); r.code != exitOK || !strings.Contains(r.stdout, want) {
		t.Errorf("watch: exit %d, %q; want the path %s", r.code, r.stdout, want)
	}

	r = helios(t, nil, "job", "cancel", "finished", "--storage", storage)
	if r.code != exitFailed || !strings.Contains(r.stderr, `job "finished" is done`) || !strings.Contains(r.stderr, "nothing to cancel") {
		t.Errorf("cancel of a done job: exit %d, %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(storage, filepath.FromSlash(layout.CancelKey("finished")))); err == nil {
		t.Error("a cancel request was left for a done job")
	}
}

// --out is checked before anything runs: a folder that is not there or
// cannot be written is a usage error at once, with nothing rendered and no
// directory made (the video used to fail after every chunk had rendered,
// and a mistyped folder was created).
func TestOutCheckedBeforeRendering(t *testing.T) {
	spec := writeSpec(t, testkit.NativeSpec("outcheck", 4, 2))
	dir := t.TempDir()
	for _, c := range []struct{ out, want string }{
		{filepath.Join(dir, "typo", "sub", "v.mp4"), "the folder " + filepath.Join(dir, "typo", "sub") + " does not exist"},
		{"/proc/v.mp4", "the folder /proc is not writable"}, // read-only, even for root
		{filepath.Join(spec, "v.mp4"), spec + " is not a folder"},
	} {
		storage := filepath.Join(dir, "storage")
		r := helios(t, nil, "job", "run", spec, "--out", c.out, "--storage", storage)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("--out %s: exit %d, stderr %q; want exit %d and %q", c.out, r.code, r.stderr, exitUsage, c.want)
		}
		if _, err := os.Stat(storage); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("--out %s: the storage was opened (%v): something ran before the check", c.out, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "typo")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a folder of the mistyped --out was made (%v)", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".helios-out-*"))
	if len(left) > 0 {
		t.Errorf("the writability probe was left behind: %v", left)
	}
}

// Ctrl-C in watch of a job something runs stops watching, says how to
// follow it again (not that the job goes on: watch cannot know), exits 130
// and does not print "context canceled".
func TestWatchInterrupted(t *testing.T) {
	storage := t.TempDir()
	if r := helios(t, nil, "job", "submit", writeSpec(t, testkit.NativeSpec("waiting", 4, 2)), "--storage", storage); r.code != exitOK {
		t.Fatalf("submit: exit %d %s", r.code, r.stderr)
	}
	unlock, err := lockJob(storage, "waiting") // as a `job run` of it would
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"job", "watch", "waiting", "--storage", storage, "--interval", "50ms"}, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	want := "stopped watching job waiting; follow it again with: helios job watch waiting --storage " + storage
	if code != exitInterrupted || strings.Contains(stderr.String(), "context canceled") || !strings.Contains(stderr.String(), want) || strings.Contains(stderr.String(), "goes on") {
		t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), exitInterrupted, want)
	}
}

// A bucket the CLI cannot reach as configured is a usage error before
// anything runs, saying what to do, in the SDKs' own terms: the region of
// AWS_CONFIG_FILE counts; missing credentials name the command that makes
// them, not the SDK's chain of wrapped errors.
func TestCloudStorageHints(t *testing.T) {
	home := t.TempDir()
	config := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(config, []byte("[default]\nregion = eu-west-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, storage string
		env           map[string]string
		want          string
	}{
		{"s3, no region", "s3://bucket", nil, "no AWS region: set AWS_REGION"},
		{"s3, the region of AWS_CONFIG_FILE, no credentials", "s3://bucket", map[string]string{"AWS_CONFIG_FILE": config}, "no AWS credentials: run `aws configure`"},
		{"s3, no credentials", "s3://bucket", map[string]string{"AWS_REGION": "us-east-1"}, "no AWS credentials: run `aws configure`"},
		{"gs, no credentials", "gs://bucket", nil, "no Google Cloud credentials: run `gcloud auth application-default login`"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
				"AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			t.Setenv("HOME", home)
			t.Setenv("CLOUDSDK_CONFIG", filepath.Join(home, "gcloud"))
			t.Setenv("AWS_EC2_METADATA_DISABLED", "true") // not on EC2: no instance role to ask
			if strings.HasPrefix(c.storage, "gs://") && metadata.OnGCE() {
				t.Skip("on Google Compute Engine the instance's credentials are found")
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			r := helios(t, c.env, "job", "status", "x", "--storage", c.storage)
			if r.code != exitUsage || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "operation error") || strings.Contains(r.stderr, "code=Unknown") {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, exitUsage, c.want)
			}
		})
	}
}

// Cancelling a job twice: the second says it is already cancelled (exit 1,
// as for any job that has ended), not "cancel requested" again.
func TestCancelTwice(t *testing.T) {
	storage := t.TempDir()
	if r := helios(t, nil, "job", "submit", writeSpec(t, testkit.NativeSpec("twice", 4, 2)), "--storage", storage); r.code != exitOK {
		t.Fatalf("submit: exit %d %s", r.code, r.stderr)
	}
	if r := helios(t, nil, "job", "cancel", "twice", "--storage", storage); r.code != exitOK || !strings.Contains(r.stdout, "cancel requested for job twice") {
		t.Fatalf("cancel: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := helios(t, nil, "job", "cancel", "twice", "--storage", storage); r.code != exitFailed || !strings.Contains(r.stderr, "job twice is already cancelled") {
		t.Errorf("cancel again: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// An edited spec under a used id: the advice (--id) works as given, and
// --id wins over the id in the file (issue 13, point 1).
func TestEditedSpecRendersUnderANewID(t *testing.T) {
	testkit.RequireFFmpeg(t)
	storage := t.TempDir()
	spec := testkit.NativeSpec("clip", 4, 2)
	path := writeSpec(t, spec)
	out := filepath.Join(t.TempDir(), "v.mp4")
	if r := helios(t, nil, "job", "run", path, "--out", out, "--storage", storage); r.code != exitOK {
		t.Fatalf("run: exit %d %s", r.code, r.stderr)
	}
	spec.Metadata.TotalFrames = 6 // the edit
	data, _ := json.Marshal(spec)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := helios(t, nil, "job", "run", path, "--out", out, "--storage", storage)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--id clip-2") {
		t.Fatalf("edited spec: exit %d, %q; want advice to use --id", r.code, r.stderr)
	}
	r = helios(t, nil, "job", "run", path, "--out", out, "--storage", storage, "--id", "clip-2")
	if r.code != exitOK || !strings.Contains(r.stdout, "frames:    6") {
		t.Fatalf("with --id clip-2: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// Cancel, then run again: the run says the job is cancelled without
// forgetting its finished chunks, and says how to render it anyway;
// --restart does, rendering only the rest (issue 13, point 2).
func TestCancelThenRestart(t *testing.T) {
	testkit.RequireFFmpeg(t)
	storage := t.TempDir()
	path := writeSpec(t, slowSpec("long", 40, 5)) // half a second a chunk
	out := filepath.Join(t.TempDir(), "v.mp4")

	// A first run is stopped after a few chunks (Ctrl-C), then cancelled.
	markers := func() int {
		keys, _ := filepath.Glob(filepath.Join(storage, "renders", "long", "chunks", "*.json"))
		return len(keys)
	}
	ctx, stop := context.WithCancel(t.Context()) // no deadline: the worker would take it as its own
	defer stop()
	go func() { // stop once the first chunks are done, whatever the machine's speed
		for markers() < 2 && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		stop()
	}()
	var stdout, stderr bytes.Buffer
	run(ctx, []string{"job", "run", path, "--out", out, "--storage", storage, "--concurrency", "1"}, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	done := markers()
	if done == 0 || done == 8 {
		t.Fatalf("%d chunks done before the stop; the test needs some, not all", done)
	}
	if r := helios(t, nil, "job", "cancel", "long", "--storage", storage); r.code != exitOK {
		t.Fatalf("cancel: exit %d %s", r.code, r.stderr)
	}

	r := helios(t, nil, "job", "run", path, "--out", out, "--storage", storage)
	if r.code != exitFailed || !strings.Contains(r.stderr, "--restart") {
		t.Errorf("run of a cancelled job: exit %d, %q; want a hint to --restart", r.code, r.stderr)
	}
	r = helios(t, nil, "job", "status", "long", "--storage", storage, "--json")
	var st job.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || st.State != job.StateCancelled || st.ChunksDone != done {
		t.Errorf("status after the cancelled run: %s, %d chunks done (%v); want cancelled with the %d the markers prove", st.State, st.ChunksDone, err, done)
	}

	r = helios(t, nil, "job", "run", path, "--out", out, "--storage", storage, "--restart", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != exitOK || err != nil || st.State != job.StateDone {
		t.Fatalf("--restart: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	rendered := 0
	for _, c := range st.Chunks {
		rendered += c.Attempts
	}
	if want := 8 + (8 - done); rendered > want+1 { // +1: the chunk the stop caught mid-render
		t.Errorf("%d attempts in all; the restart rendered finished chunks again", rendered)
	}
}

// Submit to a local folder: nothing will run the job, so submit does not
// suggest watching it but gives the command that renders it, with --id (an
// id given at submit is kept) and --storage; watch says the same at once and
// ends (exit 3) rather than wait forever; the command given works (issue 13,
// point 3; issue 22, must 4).
func TestLocalSubmitAndWatch(t *testing.T) {
	testkit.RequireFFmpeg(t)
	storage := t.TempDir()
	r := helios(t, nil, "job", "submit", writeSpec(t, testkit.NativeSpec("local", 4, 2)), "--storage", storage, "--id", "renamed")
	command := "helios job run " + filepath.Join(storage, "jobs", "renamed.json") + " --id renamed --out PATH --storage " + storage
	if r.code != exitOK || !strings.Contains(r.stdout, command) || strings.Contains(r.stdout+r.stderr, "job watch") {
		t.Fatalf("submit: exit %d; want %q and no watch\n%s%s", r.code, command, r.stdout, r.stderr)
	}
	ctx, stop := context.WithTimeout(t.Context(), 10*time.Second) // a watch that waits fails below
	defer stop()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"job", "watch", "renamed", "--storage", storage, "--interval", "50ms"}, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	if code != exitNotRunning || ctx.Err() != nil || !strings.Contains(stderr.String(), "nothing runs jobs submitted to a local folder; render it here with: "+command) {
		t.Fatalf("watch: exit %d (want %d at once)\n%s%s", code, exitNotRunning, stdout.String(), stderr.String())
	}
	// The command, pasted.
	args := strings.Fields(strings.Replace(strings.TrimPrefix(command, "helios "), "PATH", filepath.Join(t.TempDir(), "v.mp4"), 1))
	if r := helios(t, nil, append(args, "--json")...); r.code != exitOK || !strings.Contains(r.stdout, `"jobId": "renamed"`) {
		t.Fatalf("the command given: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := helios(t, nil, "job", "watch", "renamed", "--storage", storage); r.code != exitOK {
		t.Errorf("watch of the done job: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// A run stopped by Ctrl-C: status says at once that the job is interrupted
// and how to resume it, and the command it gives does (issue 13, point 5).
func TestInterruptedJobIsReported(t *testing.T) {
	testkit.RequireFFmpeg(t)
	storage := t.TempDir()
	runUntilFirstChunk(t, writeSpec(t, slowSpec("halted", 40, 5)), storage, "halted")

	r := helios(t, nil, "job", "status", "halted", "--storage", storage)
	resume := "helios job run " + filepath.Join(storage, "renders", "halted", "spec.json") + " --id halted --out PATH --storage " + storage
	if !strings.Contains(r.stdout, "is interrupted after") || !strings.Contains(r.stdout, resume) {
		t.Fatalf("status of an interrupted job:\n%s", r.stdout)
	}
	out := filepath.Join(t.TempDir(), "v.mp4")
	if r := helios(t, nil, "job", "run", filepath.Join(storage, "renders", "halted", "spec.json"), "--out", out, "--storage", storage); r.code != exitOK {
		t.Fatalf("the resume command given: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := helios(t, nil, "job", "status", "halted", "--storage", storage); strings.Contains(r.stdout, "interrupted") {
		t.Errorf("a done job is reported interrupted:\n%s", r.stdout)
	}
}

// A spec with mistakes: every problem once, under one header, with full
// paths and the spec's words (issue 13, point 7).
func TestSpecMistakesAreReportedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clip.json")
	doc := `{"metadata": {"frames": 10, "fps": "30", "width": 64, "height": 48}, "command": "ffmpeg", "args": [], "framesPerChunk": 5, "chunkTimeout": 300}`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	r := helios(t, nil, "job", "run", path, "--out", filepath.Join(t.TempDir(), "v.mp4"), "--storage", t.TempDir())
	want := []string{
		"helios: " + path + " is not a valid job spec (4 problems):\n",
		"  - chunkTimeout: expected a duration such as \"90s\" or \"15m\", got the number 300\n",
		"  - metadata.fps: expected a number, got the string \"30\"\n",
		"  - metadata.frames: unknown field; did you mean metadata.totalFrames?\n",
		// In the same round as the names and types (issue 22).
		"  - args: must contain {output}, the file the command writes the segment to\n",
	}
	if r.code != exitUsage || r.stderr != strings.Join(want, "") {
		t.Errorf("exit %d, stderr:\n%s\nwant:\n%s", r.code, r.stderr, strings.Join(want, ""))
	}
}

// --assets and a spec naming another bundle: refused before anything is
// uploaded.
func TestAssetsConflictUploadsNothing(t *testing.T) {
	spec := testkit.NativeSpec("assets-conflict", 4, 2)
	spec.Assets = "assets/" + strings.Repeat("0", 64) + ".tar.gz"
	path, store, tree := writeSpec(t, spec), t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "index.html"), []byte("<!doctype html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := helios(t, nil, "job", "run", path, "--out", filepath.Join(t.TempDir(), "v.mp4"), "--storage", store, "--assets", tree)
	if r.code != exitUsage || !strings.Contains(r.stderr, "but the spec names "+spec.Assets) {
		t.Fatalf("exit %d, stderr %q; want a usage error naming the spec's bundle", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(filepath.Join(store, "assets")); len(entries) > 0 {
		t.Errorf("a bundle was uploaded: %v", entries)
	}
}
