package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
)

// A job stopped by its budget says why, how much it used and how to go
// on; `job budget` raises it and the same command finishes the job from
// where it stopped. The cost is printed by run, status and watch.
func TestBudgetThroughTheCLI(t *testing.T) {
	testkit.RequireFFmpeg(t)
	storage := t.TempDir()
	env := map[string]string{"HELIOS_STORAGE_URL": storage, "HELIOS_CONCURRENCY": "1"}
	spec := testkit.NativeSpec("capped", 40, 5)
	spec.Budget = job.Budget{WorkerSeconds: 0.001} // reached by the first chunk
	path := writeSpec(t, spec)
	out := filepath.Join(t.TempDir(), "video.mp4")

	r := helios(t, env, "job", "run", path, "--out", out)
	if r.code != exitFailed || !strings.Contains(r.stdout, "worker-seconds of its budget of 0.001.") ||
		!strings.Contains(r.stdout, "helios job budget capped") || !strings.Contains(r.stdout, "cost:   $0 (run on this machine") {
		t.Fatalf("over budget: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, cmd := range [][]string{{"job", "status", "capped"}, {"job", "watch", "capped"}} {
		if r := helios(t, env, cmd...); !strings.Contains(r.stdout, "of its budget of 0.001") || !strings.Contains(r.stdout, "worker:") {
			t.Errorf("%v does not show the reason and the usage:\n%s", cmd, r.stdout)
		}
	}

	if r := helios(t, env, "job", "budget", "capped"); r.code != exitUsage || !strings.Contains(r.stderr, "give --usd or --worker-seconds") {
		t.Errorf("budget without a figure: exit %d, %q", r.code, r.stderr)
	}
	// The flag is named, not the spec field it fills.
	if r := helios(t, env, "job", "budget", "capped", "--usd", "-1"); r.code != exitUsage || !strings.Contains(r.stderr, "--usd: must be") || strings.Contains(r.stderr, "budget.usd") {
		t.Errorf("negative budget: exit %d, %q", r.code, r.stderr)
	}
	// Not found, like status: exit 2.
	if r := helios(t, env, "job", "budget", "nosuchjob", "--usd", "1"); r.code != exitUsage || !strings.Contains(r.stderr, `job "nosuchjob" not found`) {
		t.Errorf("a job never run got a budget: %q", r.stdout)
	}
	if r := helios(t, env, "job", "budget", "capped", "--worker-seconds", "3600"); r.code != exitOK || !strings.Contains(r.stdout, "3600 worker-seconds") ||
		!strings.Contains(r.stdout, "the deployment's caps (HELIOS_BUDGET_USD, HELIOS_BUDGET_WORKER_SECONDS of its orchestrator) still apply") {
		t.Fatalf("raise: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Above the cap this configuration knows: what the job may use is said.
	capped := map[string]string{"HELIOS_STORAGE_URL": storage, "HELIOS_BUDGET_WORKER_SECONDS": "600"}
	if r := helios(t, capped, "job", "budget", "capped", "--worker-seconds", "3600"); r.code != exitOK ||
		!strings.Contains(r.stdout, "the deployment's cap of 600 worker-seconds (HELIOS_BUDGET_USD, HELIOS_BUDGET_WORKER_SECONDS) still applies: the job may use 600 worker-seconds, not more") {
		t.Errorf("raise above the cap: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = helios(t, env, "job", "run", path, "--out", out)
	if r.code != exitOK || !strings.Contains(r.stdout, "worker:") {
		t.Fatalf("after raising: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	testkit.AssertFrameExact(t, out, testkit.SinglePass(t, t.TempDir(), 40))
}
