// Package config reads the environment of the functions and the CLI, in one
// place. Each variable is a constant here so the infrastructure code that
// sets them (CDK, Cloud Run, SAM) uses the same names.
package config

import (
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
)

// Environment variable names.
const (
	EnvStorageURL          = "HELIOS_STORAGE_URL"
	EnvAdapter             = "HELIOS_ADAPTER"
	EnvAllowedCommands     = "HELIOS_ALLOWED_COMMANDS"
	EnvConcurrency         = "HELIOS_CONCURRENCY"
	EnvStatusInterval      = "HELIOS_STATUS_INTERVAL"
	EnvStitchTimeout       = "HELIOS_STITCH_TIMEOUT"
	EnvCostPerWorkerSecond = "HELIOS_COST_PER_WORKER_SECOND"
	EnvLogLevel            = "HELIOS_LOG_LEVEL"
	EnvWorkerFunction      = "HELIOS_WORKER_FUNCTION"
	EnvStitcherFunction    = "HELIOS_STITCHER_FUNCTION"
)

// Names lists every variable, for documentation and infrastructure tests.
var Names = []string{
	EnvStorageURL, EnvAdapter, EnvAllowedCommands, EnvConcurrency, EnvStatusInterval,
	EnvStitchTimeout, EnvCostPerWorkerSecond, EnvLogLevel, EnvWorkerFunction, EnvStitcherFunction,
}

// Variables the platforms set, read here too so one place knows the
// environment.
const (
	EnvLambdaRuntimeAPI   = "AWS_LAMBDA_RUNTIME_API"   // set on Lambda: serve the Lambda runtime API
	EnvLambdaFunctionName = "AWS_LAMBDA_FUNCTION_NAME" // this function, on Lambda
	EnvPort               = "PORT"                     // HTTP port elsewhere (Cloud Run sets it)
	EnvCloudRunService    = "K_SERVICE"                // set on Cloud Run
)

// Adapter kinds.
const (
	AdapterLocal  = "local"
	AdapterLambda = "lambda"
)

// Defaults.
const (
	DefaultStorageURL      = ".helios"
	DefaultAllowedCommands = "ffmpeg"
)

// Config is the validated environment.
type Config struct {
	StorageURL          string
	Adapter             string
	Allowed             job.Allowlist
	Concurrency         int
	StatusInterval      time.Duration
	StitchTimeout       time.Duration
	CostPerWorkerSecond float64
	LogLevel            slog.Level
	WorkerFunction      string
	StitcherFunction    string

	// Platform.
	OnLambda           bool   // AWS_LAMBDA_RUNTIME_API is set
	LambdaFunctionName string // this function's name on Lambda
	Port               string // HTTP port when not on Lambda (default 8080)
	OnCloudRun         bool   // K_SERVICE is set: listen on every interface
}

// FromEnv reads the configuration through getenv (os.Getenv in a program).
// Every bad value is reported, naming the variable and what it expects.
func FromEnv(getenv func(string) string) (Config, error) {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	var problems []string
	bad := func(name, value, want string) {
		problems = append(problems, fmt.Sprintf("%s=%q: expected %s", name, value, want))
	}
	c := Config{
		StorageURL:       get(EnvStorageURL, DefaultStorageURL),
		Adapter:          get(EnvAdapter, AdapterLocal),
		Allowed:          job.ParseAllowlist(get(EnvAllowedCommands, DefaultAllowedCommands)),
		WorkerFunction:   get(EnvWorkerFunction, ""),
		StitcherFunction: get(EnvStitcherFunction, ""),

		OnLambda:           get(EnvLambdaRuntimeAPI, "") != "",
		LambdaFunctionName: get(EnvLambdaFunctionName, ""),
		Port:               get(EnvPort, "8080"),
		OnCloudRun:         get(EnvCloudRunService, "") != "",
	}
	if n, err := strconv.Atoi(c.Port); err != nil || n < 1 || n > 65535 {
		bad(EnvPort, c.Port, "a TCP port number")
	}
	switch c.Adapter {
	case AdapterLocal:
	case AdapterLambda:
		if c.WorkerFunction == "" || c.StitcherFunction == "" {
			problems = append(problems, fmt.Sprintf("%s=lambda needs %s and %s (function names or ARNs)", EnvAdapter, EnvWorkerFunction, EnvStitcherFunction))
		}
	default:
		bad(EnvAdapter, c.Adapter, "local or lambda")
	}
	if len(c.Allowed) == 0 {
		bad(EnvAllowedCommands, getenv(EnvAllowedCommands), "a comma-separated list of program names")
	}
	v := get(EnvConcurrency, strconv.Itoa(runtime.NumCPU()))
	if n, err := strconv.Atoi(v); err != nil || n < 1 || n > 10_000 {
		bad(EnvConcurrency, v, "a whole number from 1 to 10000")
	} else {
		c.Concurrency = n
	}
	c.StatusInterval = duration(get(EnvStatusInterval, "1s"), EnvStatusInterval, bad)
	c.StitchTimeout = duration(get(EnvStitchTimeout, "15m"), EnvStitchTimeout, bad)
	v = get(EnvCostPerWorkerSecond, "0")
	if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 {
		bad(EnvCostPerWorkerSecond, v, "a non-negative number of US dollars")
	} else {
		c.CostPerWorkerSecond = f
	}
	v = get(EnvLogLevel, "info")
	if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
		bad(EnvLogLevel, v, "debug, info, warn or error")
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("configuration: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

func duration(v, name string, bad func(name, value, want string)) time.Duration {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		bad(name, v, "a positive duration such as 1s or 15m")
	}
	return d
}
