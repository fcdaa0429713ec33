package job

// Functions whose compute a job's usage counts.
const (
	FunctionOrchestrator  = "orchestrator"
	FunctionWorker        = "worker"
	FunctionBrowserWorker = "browserWorker"
	FunctionStitcher      = "stitcher"
)

// Usage is what a job used, as its platform bills it: each function's
// billed time and invocations, and the storage requests every part of the
// pipeline made. It adds up across the job's runs.
type Usage struct {
	Compute  map[string]Compute `json:"compute,omitempty"` // by function
	Requests RequestCounts      `json:"storageRequests,omitzero"`
}

// Compute is one function's share of a job.
type Compute struct {
	Seconds     float64 `json:"seconds"` // billed: rounded as the platform rounds each invocation
	Invocations int     `json:"invocations"`
}

// Add returns the sum of u and v.
func (u Usage) Add(v Usage) Usage {
	sum := Usage{Requests: u.Requests.Add(v.Requests), Compute: make(map[string]Compute, len(u.Compute)+len(v.Compute))}
	for _, m := range []map[string]Compute{u.Compute, v.Compute} {
		for fn, c := range m {
			s := sum.Compute[fn]
			s.Seconds += c.Seconds
			s.Invocations += c.Invocations
			sum.Compute[fn] = s
		}
	}
	return sum
}

// Cost is a job's usage priced (pkg/cost).
type Cost struct {
	USD         float64 `json:"usd"`
	ComputeUSD  float64 `json:"computeUsd"`  // function time at the functions' sizes
	RequestsUSD float64 `json:"requestsUsd"` // function invocations
	StorageUSD  float64 `json:"storageUsd"`  // storage requests
	Platform    string  `json:"platform"`    // lambda, cloudrun or local (free)
	PricesAsOf  string  `json:"pricesAsOf,omitempty"`
}

// Budget caps what a job may spend; a zero field is no cap. A job that
// reaches its budget stops dispatching and fails with CodeBudgetExceeded,
// keeping its finished chunks for a run with a higher budget.
type Budget struct {
	USD           float64 `json:"usd,omitempty"`
	WorkerSeconds float64 `json:"workerSeconds,omitempty"`
}

// Within returns b with each cap lowered to ceiling's where ceiling has
// one: a job's budget within its deployment's.
func (b Budget) Within(ceiling Budget) Budget {
	lower := func(v, c float64) float64 {
		if c > 0 && (v == 0 || c < v) {
			return c
		}
		return v
	}
	return Budget{USD: lower(b.USD, ceiling.USD), WorkerSeconds: lower(b.WorkerSeconds, ceiling.WorkerSeconds)}
}
