package orchestrator_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/helios-project/infrastructure/pkg/cost"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
)

// tenSecondChunks makes every attempt take 10 s of (virtual) time and
// report 3 GETs of its own, as a worker reports the requests it made.
func tenSecondChunks(u *unit) {
	u.cfg.Concurrency = 2
	u.cfg.StatusInterval, u.cfg.CancelPollInterval, u.cfg.LeaseTTL = time.Second, time.Second, 30*time.Second
	u.workers.fail = func(ctx context.Context, w job.WorkerJob) error { return stall(ctx, 10*time.Second) }
	u.workers.requests = job.RequestCounts{Get: 3}
}

// The status prices every part of the job on the platform's terms: the
// workers' and the stitcher's time and calls, the orchestrator's own, and
// the storage requests of all of them.
func TestCostCoversEveryPart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t)
		tenSecondChunks(u)
		u.cfg.Cost, _ = cost.Default(cost.Lambda)
		s := oneFrameChunks("priced", 20)
		start := time.Now()
		st, err := u.run(t.Context(), s, orchestrator.RunOptions{})
		if err != nil || st.State != job.StateDone {
			t.Fatalf("run = %+v, %v", st, err)
		}
		took := time.Since(start).Seconds()
		c := st.Usage.Compute
		if w := c[job.FunctionWorker]; w.Invocations != 20 || w.Seconds != 200 {
			t.Errorf("worker usage %+v; want 20 invocations, 200 s", w)
		}
		if s := c[job.FunctionStitcher]; s.Invocations != 1 {
			t.Errorf("stitcher usage %+v", s)
		}
		if o := c[job.FunctionOrchestrator]; o.Invocations != 1 || o.Seconds < 100 || o.Seconds > took {
			t.Errorf("orchestrator usage %+v; the job took %.0f s", o, took)
		}
		// Each chunk's segment and marker, counted where they were written
		// (the fake workers write through the orchestrator's context), and
		// the 3 GETs each worker reported.
		if r := st.Usage.Requests; r.Put < 40 || r.Get < 60 || r.List < 1 {
			t.Errorf("storage requests %+v", r)
		}
		m, _ := cost.Default(cost.Lambda)
		want := m.Price(st.Usage)
		if st.Cost != want || st.EstimatedCostUSD != want.USD || want.ComputeUSD <= 0 || want.RequestsUSD <= 0 || want.StorageUSD <= 0 {
			t.Errorf("cost %+v (estimated %v); want %+v", st.Cost, st.EstimatedCostUSD, want)
		}
		if stored := u.stored(s.ID); stored.Cost != st.Cost || stored.Usage.Requests != st.Usage.Requests {
			t.Errorf("stored cost %+v, usage %+v", stored.Cost, stored.Usage)
		}
	})
}

// A job that reaches its budget stops dispatching and fails saying why,
// with its finished chunks kept; with the budget raised it finishes,
// rendering only what was left.
func TestBudgetStopsAJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t)
		tenSecondChunks(u)
		s := oneFrameChunks("capped", 20)
		s.Budget = job.Budget{WorkerSeconds: 55}
		st, err := u.run(t.Context(), s, orchestrator.RunOptions{})
		if err != nil || st.State != job.StateFailed || st.Error == nil || st.Error.Code != joberr.CodeBudgetExceeded {
			t.Fatalf("run = %s, %v, %v; want failed with budget_exceeded", st.State, st.Error, err)
		}
		if !strings.Contains(st.Error.Message, "worker-seconds of its budget of 55.") || !strings.Contains(st.Error.Message, "helios job budget capped") {
			t.Errorf("error %q does not give the figures and the way on", st.Error.Message)
		}
		// Two lanes of 10 s chunks reach 55 worker-seconds after 2.75 waves:
		// four chunks done, the two running stopped.
		if st.ChunksDone != 4 || st.WorkerSeconds > 60 {
			t.Errorf("%d chunks done, %.1f worker-seconds; want 4, about 55", st.ChunksDone, st.WorkerSeconds)
		}
		before, _ := u.workers.invoked()

		if err := u.jobs.RaiseBudget(t.Context(), s.ID, job.Budget{WorkerSeconds: 1000}); err != nil {
			t.Fatal(err)
		}
		st, err = u.run(t.Context(), s, orchestrator.RunOptions{})
		if err != nil || st.State != job.StateDone {
			t.Fatalf("run with the budget raised = %s, %v, %v", st.State, st.Error, err)
		}
		u.wantOutput(s)
		if after, _ := u.workers.invoked(); after-before != 16 {
			t.Errorf("%d invocations in the second run; want the 16 chunks left", after-before)
		}
	})
}

// The deployment's cap is a ceiling: a spec cannot raise it.
func TestDeploymentBudgetIsACeiling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t)
		tenSecondChunks(u)
		u.cfg.Cost, _ = cost.Default(cost.Lambda)
		u.cfg.Budget = job.Budget{USD: 0.001}
		s := oneFrameChunks("ceiling", 20)
		s.Budget = job.Budget{USD: 100}
		st, err := u.run(t.Context(), s, orchestrator.RunOptions{})
		if err != nil || st.Error == nil || st.Error.Code != joberr.CodeBudgetExceeded || !strings.Contains(st.Error.Message, "of its budget of $0.001, the deployment's cap (HELIOS_BUDGET_USD), which a job's budget cannot raise") ||
			strings.Contains(st.Error.Message, "helios job budget") {
			t.Fatalf("run = %s, %v, %v; want stopped at the deployment's $0.001, saying no job budget lifts it", st.State, st.Error, err)
		}
		if st.EstimatedCostUSD > 0.0012 {
			t.Errorf("spent $%v against a $0.001 cap", st.EstimatedCostUSD)
		}
	})
}
