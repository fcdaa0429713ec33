package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/helios-project/infrastructure/internal/awslocal"
	"github.com/helios-project/infrastructure/internal/localnet"
	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/adapter"
	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
)

// The orchestrator is a real process (`helios job run`, the whole pipeline
// in it) killed with SIGKILL at random moments of the job, and started
// again each time, until a run is left to finish. Nothing is told to stop:
// leases, stitch locks, markers and segments are left as a crash leaves
// them, and its ffmpeg processes must die with it. HELIOS_FAULT_SEED
// replays a sequence of kill times.
func TestOrchestratorProcessKilledAtRandom(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the CLI")
	}
	testkit.RequireFFmpeg(t)
	cli := buildCLI(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("HELIOS_FAULT_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("HELIOS_FAULT_SEED=%d", seed)

	dir := t.TempDir()
	store, tmp := filepath.Join(dir, "storage"), filepath.Join(dir, "tmp")
	os.MkdirAll(tmp, 0o755)
	spec := testkit.NativeSpec("killed-at-random", 60, 6)
	// Real-time frames, so a run lasts long enough (about 3 s) to be killed
	// in every phase.
	vf := slices.Index(spec.Args, "-vf") + 1
	spec.Args[vf] += ",realtime"
	data, _ := json.Marshal(spec)
	specPath := filepath.Join(dir, "spec.json")
	os.WriteFile(specPath, data, 0o600)
	out := filepath.Join(dir, "video.mp4")
	run := func() *exec.Cmd {
		cmd := exec.Command(cli, "job", "run", specPath, "--storage", store, "--out", out, "--concurrency", "3")
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	var phases []string
	for kill := 1; kill <= 6; kill++ {
		cmd := run()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		wait := time.Duration(rng.Int64N(int64(3 * time.Second)))
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("run %d ended on its own, failing: %v", kill, err)
			}
			phases = append(phases, "finished before "+wait.Round(10*time.Millisecond).String())
		case <-time.After(wait):
			phase := phaseOf(store, spec.ID)
			_ = cmd.Process.Kill()
			<-exited
			phases = append(phases, fmt.Sprintf("%s (%s)", wait.Round(10*time.Millisecond), phase))
			if left := processesUnder(tmp); len(left) > 0 {
				waitGone(t, tmp, left)
			}
			continue
		}
		break
	}
	if _, err := os.Stat(out); err != nil {
		cmd := run()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("the run after the kills: %v", err)
		}
	}
	st, err := jobstore.New(testkit.Bucket(t, store), nil, nil).Status(t.Context(), spec.ID)
	if err != nil {
		t.Fatal(err)
	}
	name := "orchestrator process SIGKILLed at random, restarted: " + strings.Join(phases, ", ")
	if st.State != job.StateDone {
		record(name, "frame-exact", fmt.Sprintf("WRONG: %s %v", st.State, st.Error))
		t.Fatalf("state %s: %v", st.State, st.Error)
	}
	testkit.AssertFrameExact(t, out, testkit.SinglePass(t, t.TempDir(), 60))
	record(name, "frame-exact", "done, frame-exact (60 frames)")
}

func buildCLI(t *testing.T) string {
	t.Helper()
	root, err := localnet.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	exe, err := localnet.Build(t.Context(), filepath.Join(root, "cmd", "helios"), t.TempDir(), "helios")
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// phaseOf says where the job is by its status: the state and chunks done.
func phaseOf(store, id string) string {
	data, err := os.ReadFile(filepath.Join(store, filepath.FromSlash(layout.StatusKey(id))))
	if err != nil {
		return "no status yet"
	}
	var st job.Status
	if json.Unmarshal(data, &st) != nil {
		return "status being written"
	}
	if st.State == job.StateRunning {
		return fmt.Sprintf("%s, %d/%d chunks", st.State, st.ChunksDone, st.ChunksTotal)
	}
	return string(st.State)
}

// processesUnder lists the processes whose working directory is under dir:
// the commands of a killed run (each runs in its chunk's work dir).
func processesUnder(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && strings.HasPrefix(cwd, dir+"/") {
			out = append(out, pid)
		}
	}
	return out
}

// waitGone fails if processes of a killed run are still there after a
// moment (the parent-death signal is delivered at once; their exit and
// reaping take a little).
func waitGone(t *testing.T, dir string, pids []int) {
	t.Helper()
	for range 100 {
		if len(processesUnder(dir)) == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	left := processesUnder(dir)
	for _, pid := range left {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	t.Fatalf("processes of the killed run outlived it: %v", left)
}

// Workers on the Lambda emulator, their bootstraps killed with SIGKILL in
// the middle of their chunks (an out-of-memory kill, a crash): Lambda
// reports Runtime.ExitError, the orchestrator retries the chunks, and the
// emulator starts the function again, as Lambda starts a new environment.
func TestLambdaWorkersKilledMidChunk(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the worker bootstrap")
	}
	rie, err := awslocal.FindRIE()
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, nil)
	root, err := localnet.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	boot, err := awslocal.BuildBootstrap(t.Context(), filepath.Join(root, "functions", "worker"), dir)
	if err != nil {
		t.Fatal(err)
	}
	env := awslocal.CredentialsEnv()
	env[config.EnvStorageURL] = r.url
	env[config.EnvAllowedCommands] = "ffmpeg"
	lam, err := awslocal.StartLambda(t.Context(), rie, dir, awslocal.Function{Name: awslocal.WorkerFunction, Bootstrap: boot, Instances: 3, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lam.Close)
	client := lambda.NewFromConfig(aws.Config{
		Region:       awslocal.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(awslocal.AccessKeyID, awslocal.SecretAccessKey, ""),
		BaseEndpoint: aws.String(lam.URL),
	})
	r.driver.inner = splitDriver{worker: adapter.NewLambda(client, awslocal.WorkerFunction, ""), stitcher: r.driver.inner}

	spec := testkit.NativeSpec("lambda-killed", 90, 15)
	vf := slices.Index(spec.Args, "-vf") + 1
	spec.Args[vf] += ",realtime" // half a second a chunk
	r.uploadSpec(spec)
	var lost atomic.Int64
	r.driver.before = func(ctx context.Context, fn adapter.Function, n int64) (context.Context, error) {
		if fn == adapter.Worker && n == 3 {
			go func() {
				time.Sleep(250 * time.Millisecond)
				lam.Crash(awslocal.WorkerFunction)
			}()
		}
		return ctx, nil
	}
	r.driver.after = func(fn adapter.Function, err error) {
		if e := (*joberr.Error)(nil); errors.As(err, &e) && e.Code == joberr.CodeWorkerLost {
			lost.Add(1)
		}
	}
	st := r.untilFinal(spec.ID)
	if lost.Load() == 0 {
		t.Fatal("no invocation was lost: the bootstraps were not killed mid-chunk")
	}
	r.verdict(fmt.Sprintf("worker: %d Lambda bootstraps SIGKILLed mid-chunk (emulator; %d invocations for 6 chunks)", lost.Load(), lam.Calls(awslocal.WorkerFunction)),
		"frame-exact", st, 90, "")
}

// splitDriver sends workers' invocations to one transport and the
// stitcher's to another.
type splitDriver struct{ worker, stitcher adapter.Driver }

func (d splitDriver) Invoke(ctx context.Context, fn adapter.Function, payload []byte) ([]byte, error) {
	if fn == adapter.Worker {
		return d.worker.Invoke(ctx, fn, payload)
	}
	return d.stitcher.Invoke(ctx, fn, payload)
}
