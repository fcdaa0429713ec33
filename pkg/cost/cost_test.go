package cost_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/cost"
	"github.com/helios-project/infrastructure/pkg/job"
)

func model(t *testing.T, platform string) cost.Model {
	t.Helper()
	m, err := cost.Default(platform)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// usage is a small job: 10 worker invocations of 10 s, a stitch, the
// orchestrator's run, and 30 PUTs, 20 GETs and 2 LISTs.
var usage = job.Usage{
	Compute: map[string]job.Compute{
		job.FunctionWorker:       {Seconds: 100, Invocations: 10},
		job.FunctionStitcher:     {Seconds: 4, Invocations: 1},
		job.FunctionOrchestrator: {Seconds: 120, Invocations: 1},
	},
	Requests: job.RequestCounts{Put: 30, Get: 20, List: 2},
}

func near(a, b float64) bool { return math.Abs(a-b) < 2e-6 }

func TestPrice(t *testing.T) {
	tests := []struct {
		platform                  string
		compute, requests, storeg float64
	}{
		// 3,008 MB arm64 at $0.0000133334/GB-s; 512 MB for the orchestrator.
		{cost.Lambda, (104*3008.0/1024 + 120*0.5) * 0.0000133334, 12 * 0.20 / 1e6, 32*0.005/1000 + 20*0.0004/1000},
		// Worker 2 vCPU and 4 GiB at request-based prices; stitcher 2 and 8,
		// orchestrator 1 and 0.5 at instance-based prices, with no request fee.
		{cost.CloudRun, 100*(2*0.000024+4*0.0000025) + 4*(2*0.000018+8*0.000002) + 120*(0.000018+0.5*0.000002), 10 * 0.40 / 1e6, 32*0.005/1000 + 20*0.0004/1000},
		{cost.Local, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.platform, func(t *testing.T) {
			c := model(t, tt.platform).Price(usage)
			if !near(c.ComputeUSD, tt.compute) || !near(c.RequestsUSD, tt.requests) || !near(c.StorageUSD, tt.storeg) ||
				!near(c.USD, tt.compute+tt.requests+tt.storeg) || c.Platform != tt.platform || c.PricesAsOf != cost.PricesAsOf {
				t.Errorf("price = %+v; want compute %.6f, requests %.6f, storage %.6f", c, tt.compute, tt.requests, tt.storeg)
			}
		})
	}
}

func TestBilled(t *testing.T) {
	d := 1234567 * time.Microsecond
	if got := model(t, cost.Lambda).Billed(d); got != 1235*time.Millisecond {
		t.Errorf("Lambda bills %s for %s; want 1.235s", got, d)
	}
	if got := model(t, cost.CloudRun).Billed(d); got != 1300*time.Millisecond {
		t.Errorf("Cloud Run bills %s for %s; want 1.3s", got, d)
	}
}

func TestOverride(t *testing.T) {
	m, err := model(t, cost.Lambda).Override(`{"worker": {"memoryMb": 1024, "arch": "x86_64"}}`, `{"lambdaRequest": 0.000001, "storagePut": 0}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.PerSecond(job.FunctionWorker); !near(got, 0.0000166667) {
		t.Errorf("1,024 MB x86_64 worker: $%v a second", got)
	}
	if m.Sizes[job.FunctionStitcher].MemoryMB != 3008 || m.Prices.LambdaRequest != 0.000001 || m.Prices.StoragePut != 0 || m.Prices.StorageGet == 0 {
		t.Errorf("override lost the rest: %+v", m)
	}
	// The default table is untouched by an override.
	if cost.DefaultPrices().LambdaRequest != 0.20/1e6 {
		t.Error("the default table changed")
	}
	for _, bad := range []struct{ sizes, prices, want string }{
		{`{"workers": {"memoryMb": 1}}`, "", `unknown function "workers"`},
		{`{"worker": {"memoryMb": 0}}`, "", "memoryMb > 0"},
		{`{"worker": {"memoryMb": 512, "arch": "arm"}}`, "", "arch arm64 or x86_64"},
		{"", `{"lambdaPerGB": 1}`, `unknown field "lambdaPerGB"`},
		{"", `[1]`, "expected a JSON object"},
	} {
		if _, err := model(t, cost.Lambda).Override(bad.sizes, bad.prices); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Override(%q, %q) = %v; want %q", bad.sizes, bad.prices, err, bad.want)
		}
	}
	if _, err := cost.Default("azure"); err == nil || !strings.Contains(err.Error(), "lambda, cloudrun or local") {
		t.Errorf("Default(azure) = %v", err)
	}
}
