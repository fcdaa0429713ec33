// Package cost prices a job as its platform bills it: each function's time
// at its size, its invocations, and the storage requests of the whole
// pipeline, from a dated table of list prices that configuration can
// override.
package cost

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strings"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
)

// Platforms a Model prices.
const (
	Lambda   = "lambda"   // AWS Lambda and S3
	CloudRun = "cloudrun" // Google Cloud Run and Cloud Storage
	Local    = "local"    // this machine: free
)

// Lambda architectures.
const (
	ARM64 = "arm64"
	X8664 = "x86_64"
)

// Prices are list prices in US dollars per unit, without free tiers.
type Prices struct {
	AsOf string `json:"asOf"` // when the table was compiled

	LambdaGBSecond map[string]float64 `json:"lambdaGbSecond,omitempty"` // by architecture
	LambdaRequest  float64            `json:"lambdaRequest"`

	CloudRunVCPUSecond float64 `json:"cloudRunVcpuSecond"` // request-based billing
	CloudRunGiBSecond  float64 `json:"cloudRunGibSecond"`
	CloudRunRequest    float64 `json:"cloudRunRequest"`
	// Instance-based billing (CPU always allocated): no request fee.
	CloudRunInstanceVCPUSecond float64 `json:"cloudRunInstanceVcpuSecond"`
	CloudRunInstanceGiBSecond  float64 `json:"cloudRunInstanceGibSecond"`

	StoragePut float64 `json:"storagePut"` // S3 PUT, COPY, POST, LIST; Cloud Storage class A
	StorageGet float64 `json:"storageGet"` // S3 GET, HEAD; Cloud Storage class B
}

// PricesAsOf is when DefaultPrices was compiled.
const PricesAsOf = "2026-11-29"

// DefaultPrices is the table: AWS us-east-1 (Lambda, S3 Standard) and
// Google Cloud tier 1 regions (Cloud Run, Cloud Storage Standard in a
// region). docs/SPEC.md, "Cost and budgets", lists the sources.
func DefaultPrices() Prices {
	return Prices{
		AsOf:                       PricesAsOf,
		LambdaGBSecond:             map[string]float64{ARM64: 0.0000133334, X8664: 0.0000166667},
		LambdaRequest:              0.20 / 1e6,
		CloudRunVCPUSecond:         0.000024,
		CloudRunGiBSecond:          0.0000025,
		CloudRunRequest:            0.40 / 1e6,
		CloudRunInstanceVCPUSecond: 0.000018,
		CloudRunInstanceGiBSecond:  0.000002,
		StoragePut:                 0.005 / 1000,
		StorageGet:                 0.0004 / 1000,
	}
}

// Size is what one function runs with: memory and architecture on Lambda,
// vCPUs and memory on Cloud Run.
type Size struct {
	MemoryMB int     `json:"memoryMb"`
	Arch     string  `json:"arch,omitempty"` // Lambda: arm64 or x86_64
	CPU      float64 `json:"cpu,omitempty"`  // Cloud Run: vCPUs
	// Billing is Cloud Run's: "request" (the default: CPU only while a
	// request runs) or "instance" (CPU always allocated).
	Billing string `json:"billing,omitempty"`
}

// Cloud Run billing settings.
const (
	BillingRequest  = "request"
	BillingInstance = "instance"
)

// Model prices usage on one platform.
type Model struct {
	Platform string          `json:"platform"`
	Prices   Prices          `json:"prices"`
	Sizes    map[string]Size `json:"sizes"` // by function (job.Function*)
}

// Default is the model of a platform as this repository deploys it: the
// CDK app's and the Cloud Run services' default sizes.
func Default(platform string) (Model, error) {
	m := Model{Platform: platform, Prices: DefaultPrices()}
	switch platform {
	case Lambda:
		m.Sizes = map[string]Size{
			job.FunctionOrchestrator:  {MemoryMB: 512, Arch: ARM64},
			job.FunctionWorker:        {MemoryMB: 3008, Arch: ARM64},
			job.FunctionBrowserWorker: {MemoryMB: 3008, Arch: X8664},
			job.FunctionStitcher:      {MemoryMB: 3008, Arch: ARM64},
		}
	case CloudRun:
		m.Sizes = map[string]Size{
			job.FunctionOrchestrator:  {MemoryMB: 512, CPU: 1, Billing: BillingInstance},
			job.FunctionWorker:        {MemoryMB: 4096, CPU: 2},
			job.FunctionBrowserWorker: {MemoryMB: 4096, CPU: 2},
			job.FunctionStitcher:      {MemoryMB: 8192, CPU: 2, Billing: BillingInstance},
		}
	case Local:
		m.Prices = Prices{AsOf: PricesAsOf}
	default:
		return m, fmt.Errorf("platform %q: expected %s, %s or %s", platform, Lambda, CloudRun, Local)
	}
	return m, nil
}

// Override applies a deployment's settings over m: sizes (a JSON object of
// function to size, merged into m's) and prices (a JSON object of the
// Prices fields to change). Unknown fields are refused.
func (m Model) Override(sizes, prices string) (Model, error) {
	if strings.TrimSpace(sizes) != "" {
		merged, err := mergeSizes(m.Sizes, sizes)
		if err != nil {
			return m, fmt.Errorf("sizes: %w", err)
		}
		m.Sizes = merged
	}
	if strings.TrimSpace(prices) != "" {
		p := m.Prices
		p.LambdaGBSecond = maps.Clone(p.LambdaGBSecond)
		if err := strictJSON(prices, &p); err != nil {
			return m, fmt.Errorf("prices: %w", err)
		}
		m.Prices = p
	}
	return m, nil
}

// mergeSizes is sizes with the JSON object of function to size over it,
// each checked; sizes itself is left as it was.
func mergeSizes(sizes map[string]Size, override string) (map[string]Size, error) {
	var s map[string]Size
	if err := strictJSON(override, &s); err != nil {
		return nil, err
	}
	merged := maps.Clone(sizes)
	if merged == nil {
		merged = map[string]Size{}
	}
	for fn, size := range s {
		if err := checkSize(fn, size); err != nil {
			return nil, err
		}
		merged[fn] = size
	}
	return merged, nil
}

// checkSize refuses a size for a function the model does not price, or
// one with a memory, CPU, architecture or billing no platform has.
func checkSize(fn string, size Size) error {
	switch fn {
	case job.FunctionOrchestrator, job.FunctionWorker, job.FunctionBrowserWorker, job.FunctionStitcher:
	default:
		return fmt.Errorf("unknown function %q: expected %s, %s, %s or %s", fn,
			job.FunctionOrchestrator, job.FunctionWorker, job.FunctionBrowserWorker, job.FunctionStitcher)
	}
	if size.MemoryMB <= 0 || size.CPU < 0 || (size.Arch != "" && size.Arch != ARM64 && size.Arch != X8664) ||
		(size.Billing != "" && size.Billing != BillingRequest && size.Billing != BillingInstance) {
		return fmt.Errorf("%s: expected memoryMb > 0, cpu >= 0, arch %s or %s, billing %s or %s; got %+v",
			fn, ARM64, X8664, BillingRequest, BillingInstance, size)
	}
	return nil
}

func strictJSON(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("expected a JSON object: %w", err)
	}
	return nil
}

// Billed is what the platform bills for one invocation that ran for d:
// Lambda rounds up to the millisecond, Cloud Run to 100 ms.
func (m Model) Billed(d time.Duration) time.Duration {
	unit := time.Millisecond
	if m.Platform == CloudRun {
		unit = 100 * time.Millisecond
	}
	return (d + unit - 1) / unit * unit
}

// PerSecond is what a second of fn costs.
func (m Model) PerSecond(fn string) float64 {
	size, ok := m.Sizes[fn]
	if !ok {
		return 0
	}
	gb := float64(size.MemoryMB) / 1024
	switch m.Platform {
	case Lambda:
		return gb * m.Prices.LambdaGBSecond[cmp.Or(size.Arch, ARM64)]
	case CloudRun:
		if size.Billing == BillingInstance {
			return size.CPU*m.Prices.CloudRunInstanceVCPUSecond + gb*m.Prices.CloudRunInstanceGiBSecond
		}
		return size.CPU*m.Prices.CloudRunVCPUSecond + gb*m.Prices.CloudRunGiBSecond
	}
	return 0
}

// perRequest is what one invocation of fn costs.
func (m Model) perRequest(fn string) float64 {
	switch m.Platform {
	case Lambda:
		return m.Prices.LambdaRequest
	case CloudRun:
		if m.Sizes[fn].Billing == BillingInstance {
			return 0
		}
		return m.Prices.CloudRunRequest
	}
	return 0
}

// Price is what u costs.
func (m Model) Price(u job.Usage) job.Cost {
	c := job.Cost{Platform: m.Platform, PricesAsOf: m.Prices.AsOf}
	for fn, used := range u.Compute {
		c.ComputeUSD += used.Seconds * m.PerSecond(fn)
		c.RequestsUSD += float64(used.Invocations) * m.perRequest(fn)
	}
	if m.Platform != Local {
		r := u.Requests
		c.StorageUSD = float64(r.Put+r.List)*m.Prices.StoragePut + float64(r.Get)*m.Prices.StorageGet
	}
	c.USD = round(c.ComputeUSD + c.RequestsUSD + c.StorageUSD)
	c.ComputeUSD, c.RequestsUSD, c.StorageUSD = round(c.ComputeUSD), round(c.RequestsUSD), round(c.StorageUSD)
	return c
}

// round keeps a millionth of a dollar: finer is noise in a status.
func round(usd float64) float64 { return math.Round(usd*1e6) / 1e6 }
