package gcplocal

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/helios-project/infrastructure/internal/localnet"
)

// ServiceOptions describe one Cloud Run service to emulate.
type ServiceOptions struct {
	Name   string            // service name (logs are <LogDir>/<Name>-<i>.log)
	Binary string            // the function binary, served by functions-framework on $PORT
	Env    map[string]string // the container's environment (PORT is set per instance)
	// Instances is the number of container instances (max instances);
	// Concurrency the requests each takes at once (containerConcurrency).
	Instances, Concurrency int
	// Timeout is the request timeout: a request still running then gets a
	// 504 and the container's request is cancelled (default 5m).
	Timeout time.Duration
	// Pending is how long a request waits for a free instance before it is
	// refused with 429, as Cloud Run does at max instances (default 10s).
	Pending time.Duration
	LogDir  string
}

// Service is a Cloud Run service on loopback: a front on its own port that
// spreads requests over container instances of the real function binary,
// each taking at most Concurrency requests, and answers as Cloud Run does
// when it cannot: 429 with no free instance, 504 past the request timeout,
// 502 when the container's connection breaks (it crashed).
type Service struct {
	URL string // http://127.0.0.1:port, the service URL

	opts     ServiceOptions
	srv      *http.Server
	slots    chan *instance
	calls    atomic.Int64
	throttle atomic.Int64
	lose     atomic.Int64
	auth     atomic.Value // string: the last Authorization header seen

	mu      sync.Mutex
	procs   []*exec.Cmd
	closing bool
	wg      sync.WaitGroup
}

type instance struct {
	proxy *httputil.ReverseProxy
}

// StartService starts the instances and the front.
func StartService(ctx context.Context, opts ServiceOptions) (*Service, error) {
	opts.Instances = max(opts.Instances, 1)
	opts.Concurrency = max(opts.Concurrency, 1)
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.Pending <= 0 {
		opts.Pending = 10 * time.Second
	}
	s := &Service{opts: opts, slots: make(chan *instance, opts.Instances*opts.Concurrency)}
	for i := range opts.Instances {
		in, err := s.startInstance(ctx, i)
		if err != nil {
			s.Close()
			return nil, err
		}
		for range opts.Concurrency {
			s.slots <- in
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Close()
		return nil, err
	}
	s.URL = "http://" + ln.Addr().String()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// startInstance starts one container instance and keeps it running: an
// instance that exits is started again on the same port, as Cloud Run
// replaces a crashed container.
func (s *Service) startInstance(ctx context.Context, i int) (*instance, error) {
	port, err := localnet.FreePort()
	if err != nil {
		return nil, err
	}
	c := &container{
		s:       s,
		env:     s.containerEnv(port),
		logPath: filepath.Join(s.opts.LogDir, fmt.Sprintf("%s-%d.log", s.opts.Name, i)),
	}
	exited, err := c.start()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if err := waitServing(ctx, addr, exited); err != nil {
		return nil, fmt.Errorf("%s instance %d: %w (log: %s)", s.opts.Name, i, err, c.logPath)
	}
	s.wg.Go(func() { c.restartOnExit(exited) })
	return &instance{proxy: newInstanceProxy(addr)}, nil
}

// containerEnv is an instance's environment: this process's, the
// service's, and the PORT functions-framework serves on.
func (s *Service) containerEnv(port int) []string {
	env := os.Environ()
	for k, v := range s.opts.Env {
		env = append(env, k+"="+v)
	}
	return append(env, "PORT="+strconv.Itoa(port))
}

// container is one instance's process, as it is started the first time
// and again after each exit: same environment (so same port), same log.
type container struct {
	s       *Service
	env     []string
	logPath string
}

// start starts the process, appending to its log, and returns a channel
// closed when it exits. It starts nothing once the service is closing.
func (c *container) start() (chan struct{}, error) {
	s := c.s
	logFile, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.opts.Binary)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	s.mu.Lock() // Close must see every process started
	defer s.mu.Unlock()
	if s.closing {
		logFile.Close()
		return nil, errors.New("service closed")
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", s.opts.Binary, err)
	}
	s.procs = append(s.procs, cmd)
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(exited) }()
	return exited, nil
}

// restartOnExit starts the process again 100ms after each exit, as Cloud
// Run replaces a crashed container, until a start fails (the service is
// closing).
func (c *container) restartOnExit(exited chan struct{}) {
	for done := exited; ; {
		<-done
		time.Sleep(100 * time.Millisecond)
		var err error
		if done, err = c.start(); err != nil {
			return
		}
	}
}

// waitServing waits up to 30s for the instance to listen on addr, and no
// longer than it runs: a container that exits first fails at once.
func waitServing(ctx context.Context, addr string, exited <-chan struct{}) error {
	wctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-exited:
			cancel()
		case <-wctx.Done():
		}
	}()
	err := localnet.WaitListening(wctx, addr, 30*time.Second)
	cancel()
	return err
}

// newInstanceProxy forwards to the instance at addr, answering as Cloud
// Run does when it gets no answer: 504 past the request timeout, 502 when
// the connection breaks.
func newInstanceProxy(addr string) *httputil.ReverseProxy {
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
	proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		switch {
		case errors.Is(r.Context().Err(), context.DeadlineExceeded):
			http.Error(w, "upstream request timeout", http.StatusGatewayTimeout)
		default:
			// The container dropped the connection: it crashed or was killed.
			http.Error(w, "the connection to the instance broke: "+err.Error(), http.StatusBadGateway)
		}
	}
	return proxy
}

// ServeHTTP is the front: take a free instance (waiting up to Pending),
// forward the request with the request timeout, give the instance back.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		s.auth.Store(r.Header.Get("Authorization"))
	}
	if takeOne(&s.throttle) {
		http.Error(w, "Rejected by the Cloud Run service: no available instance (throttled by the test)", http.StatusTooManyRequests)
		return
	}
	timer := time.NewTimer(s.opts.Pending)
	defer timer.Stop()
	var in *instance
	select {
	case in = <-s.slots:
	case <-timer.C:
		http.Error(w, "Rejected by the Cloud Run service: the request was aborted because there was no available instance", http.StatusTooManyRequests)
		return
	case <-r.Context().Done():
		return
	}
	defer func() { s.slots <- in }()
	s.calls.Add(1)
	if takeOne(&s.lose) {
		http.Error(w, "The request failed because the instance terminated unexpectedly (lost by the test)", http.StatusInternalServerError)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.opts.Timeout)
	defer cancel()
	in.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// Calls returns how many requests reached an instance.
func (s *Service) Calls() int64 { return s.calls.Load() }

// Throttle makes the next n requests fail with 429, as Cloud Run does at max
// instances.
func (s *Service) Throttle(n int64) { s.throttle.Store(n) }

// Kill kills every instance with SIGKILL, as a crash or an out-of-memory
// kill would; Cloud Run (and this front) starts new ones.
func (s *Service) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cmd := range s.procs {
		if cmd.Process != nil && cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}
}

// Lose makes the next n requests that reach an instance fail as if the
// instance died under them: a 500 with no answer from the function.
func (s *Service) Lose(n int64) { s.lose.Store(n) }

// LastAuthorization is the Authorization header of the last request that had one.
func (s *Service) LastAuthorization() string {
	a, _ := s.auth.Load().(string)
	return a
}

// Close stops the front and the instances.
func (s *Service) Close() {
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.srv.Shutdown(ctx)
		cancel()
	}
	s.mu.Lock()
	s.closing = true
	for _, cmd := range s.procs {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// takeOne decrements n if it is positive and reports whether it did.
func takeOne(n *atomic.Int64) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}
