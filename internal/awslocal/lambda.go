// Package awslocal runs the AWS side of Helios on loopback, for the tests,
// the benchmarks and `make demo-aws-local`: the real bootstrap binaries
// under the AWS Lambda Runtime Interface Emulator, fronted by a small Lambda
// API endpoint that pools several emulators per function (each emulator runs
// one invocation at a time, as one Lambda execution environment does), and an
// S3-compatible server.
package awslocal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/helios-project/infrastructure/pkg/proc"

	"github.com/helios-project/infrastructure/internal/localnet"
)

// Function describes one function to emulate.
type Function struct {
	Name      string            // the FunctionName callers use
	Bootstrap string            // path of the bootstrap binary
	Env       map[string]string // the function's environment
	Instances int               // emulators, i.e. concurrent executions (default 1)
	Timeout   time.Duration     // per invocation (default 5m)
}

// Lambda is a Lambda API endpoint on loopback backed by emulator pools.
type Lambda struct {
	URL string // endpoint for the SDK: BaseEndpoint or AWS_ENDPOINT_URL_LAMBDA

	srv   *http.Server
	pools map[string]*pool
	wg    sync.WaitGroup
}

type pool struct {
	idle     chan string // emulator invoke URLs
	procs    []*exec.Cmd
	calls    atomic.Int64
	throttle atomic.Int64
}

// Calls returns how many invocations of fn reached an emulator.
func (l *Lambda) Calls(fn string) int64 { return l.pools[fn].calls.Load() }

// Crash kills the function processes (the bootstraps) of fn with SIGKILL,
// as an out-of-memory kill or a crash would: the invocations they ran end
// with Runtime.ExitError, and the emulators start the function again for
// the next ones, as Lambda starts new environments (the fault suite's
// workers rely on it). An orchestrator killed while its own invocations of
// other functions were in flight once left its emulator's reset hanging:
// crash an orchestrator only where no later test needs it.
func (l *Lambda) Crash(fn string) {
	for _, cmd := range l.pools[fn].procs {
		if cmd.Process == nil {
			continue
		}
		for _, pid := range proc.Children(cmd.Process.Pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Throttle makes the next n invocations of fn fail as Lambda does when a
// function is at its concurrency limit (429 TooManyRequestsException).
func (l *Lambda) Throttle(fn string, n int64) { l.pools[fn].throttle.Store(n) }

// StartLambda starts the endpoint and the emulators. rie is the path of
// aws-lambda-rie; the emulators' logs go to logDir. Every function gets
// AWS_ENDPOINT_URL_LAMBDA pointing at this endpoint, so functions invoke one
// another here as they would in an account.
func StartLambda(ctx context.Context, rie, logDir string, fns ...Function) (*Lambda, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &Lambda{pools: map[string]*pool{}, URL: "http://" + ln.Addr().String()}
	for _, fn := range fns {
		env := map[string]string{"AWS_ENDPOINT_URL_LAMBDA": l.URL}
		for k, v := range fn.Env {
			env[k] = v
		}
		fn.Env = env
		p, err := startPool(ctx, rie, logDir, fn)
		if p != nil {
			l.pools[fn.Name] = p
		}
		if err != nil {
			ln.Close()
			l.Close()
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", l.invoke)
	l.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go l.srv.Serve(ln)
	return l, nil
}

func startPool(ctx context.Context, rie, logDir string, fn Function) (*pool, error) {
	n := max(fn.Instances, 1)
	timeout := fn.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	p := &pool{idle: make(chan string, n)}
	env := append(os.Environ(), fmt.Sprintf("AWS_LAMBDA_FUNCTION_TIMEOUT=%d", int(timeout.Seconds())),
		"AWS_LAMBDA_FUNCTION_NAME="+fn.Name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024")
	for k, v := range fn.Env {
		env = append(env, k+"="+v)
	}
	for i := range n {
		// A port found free may be taken before the emulator binds it (other
		// test processes pick ports too): then the emulator exits, and it is
		// started again on other ports.
		var err error
		for try := 1; try <= 3; try++ {
			var addr string
			addr, err = p.startInstance(ctx, rie, filepath.Join(logDir, fmt.Sprintf("%s-%d-%d.log", fn.Name, i, try)), fn, env)
			if err == nil {
				p.idle <- "http://" + addr + "/2015-03-31/functions/function/invocations"
				break
			}
		}
		if err != nil {
			return p, fmt.Errorf("emulator for %s: %w", fn.Name, err)
		}
	}
	return p, nil
}

// startInstance starts one emulator and waits until it listens.
func (p *pool) startInstance(ctx context.Context, rie, logPath string, fn Function, env []string) (string, error) {
	apiPort, err := localnet.FreePort()
	if err != nil {
		return "", err
	}
	invokePort, err := localnet.FreePort()
	if err != nil {
		return "", err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	cmd := exec.Command(rie,
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", apiPort),
		"--runtime-interface-emulator-address", fmt.Sprintf("127.0.0.1:%d", invokePort),
		fn.Bootstrap)
	cmd.Env = env
	cmd.Dir = filepath.Dir(fn.Bootstrap)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return "", fmt.Errorf("start %s: %w", rie, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(exited) }()
	addr := fmt.Sprintf("127.0.0.1:%d", invokePort)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-exited:
			cancel()
		case <-wctx.Done():
		}
	}()
	if err := localnet.WaitListening(wctx, addr, 30*time.Second); err != nil {
		_ = cmd.Process.Kill()
		return "", fmt.Errorf("%w (log: %s)", err, logPath)
	}
	p.procs = append(p.procs, cmd)
	return addr, nil
}

// invoke serves the Lambda Invoke API: it takes an idle emulator (waiting
// for one, as a request waits for a free execution environment), forwards
// the payload, and answers as Lambda does: a function error is a 200 with
// X-Amz-Function-Error and the error document as payload.
func (l *Lambda) invoke(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if i := strings.LastIndexByte(name, ':'); strings.HasPrefix(name, "arn:") && i > 0 {
		name = name[i+1:]
	}
	p := l.pools[name]
	if p == nil {
		apiError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+name)
		return
	}
	if p.throttle.Load() > 0 && p.throttle.Add(-1) >= 0 {
		apiError(w, http.StatusTooManyRequests, "TooManyRequestsException", "Rate Exceeded.")
		return
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, 6*1024*1024+1))
	if err != nil {
		apiError(w, http.StatusBadRequest, "InvalidRequestContentException", err.Error())
		return
	}
	if len(payload) > 6*1024*1024 {
		apiError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException", "Request must be smaller than 6291456 bytes for the InvokeFunction operation")
		return
	}
	if r.Header.Get("X-Amz-Invocation-Type") == "Event" {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			_, _, _ = p.call(context.WithoutCancel(r.Context()), payload)
		}()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	status, body, err := p.call(r.Context(), payload)
	if err != nil {
		apiError(w, http.StatusBadGateway, "ServiceException", err.Error())
		return
	}
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	if status != http.StatusOK || isErrorDocument(body) {
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// call runs one invocation on an idle emulator. If the caller gives up, the
// invocation still runs to its end and only then frees the emulator, as an
// abandoned invocation keeps its Lambda execution environment (and as the
// emulator needs: a second invoke while one runs crashes it).
func (p *pool) call(ctx context.Context, payload []byte) (int, []byte, error) {
	var url string
	select {
	case url = <-p.idle:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	p.calls.Add(1)
	type result struct {
		status int
		body   []byte
		err    error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { p.idle <- url }()
		status, body, err := post(context.WithoutCancel(ctx), url, payload)
		done <- result{status, body, err}
	}()
	select {
	case r := <-done:
		return r.status, r.body, r.err
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
}

func post(ctx context.Context, url string, payload []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// isErrorDocument reports whether an emulator response is a function error
// ({"errorMessage": …, "errorType": …}); the emulator does not set
// X-Amz-Function-Error itself.
func isErrorDocument(body []byte) bool {
	var doc map[string]json.RawMessage
	if json.Unmarshal(body, &doc) != nil {
		return false
	}
	_, hasMsg := doc["errorMessage"]
	_, hasType := doc["errorType"]
	return hasMsg && hasType && len(doc) <= 3
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"Type": "User", "message": msg})
}

// Close stops the endpoint and the emulators.
func (l *Lambda) Close() {
	if l.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = l.srv.Shutdown(ctx)
		cancel()
	}
	for _, p := range l.pools {
		for _, cmd := range p.procs {
			if cmd.Process != nil {
				_ = cmd.Process.Kill()
			}
		}
	}
	l.wg.Wait()
}
