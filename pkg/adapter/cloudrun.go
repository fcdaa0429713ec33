package adapter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"golang.org/x/oauth2"
	"google.golang.org/api/idtoken"

	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/joberr"
)

// IDTokenSource returns a source of Google ID tokens whose audience is a
// service URL. GoogleIDTokens mints them from the Application Default
// Credentials (on Cloud Run, the service's own account through the metadata
// server); ID tokens cannot be minted offline, so tests pass a static one.
type IDTokenSource func(ctx context.Context, audience string) (oauth2.TokenSource, error)

// GoogleIDTokens is the IDTokenSource of google.golang.org/api/idtoken.
func GoogleIDTokens(ctx context.Context, audience string) (oauth2.TokenSource, error) {
	ts, err := idtoken.NewTokenSource(ctx, audience)
	if err != nil {
		return nil, fmt.Errorf("ID tokens for %s (a service account's credentials are needed: on Cloud Run the service's own; elsewhere GOOGLE_APPLICATION_CREDENTIALS or gcloud auth application-default login --impersonate-service-account): %w", audience, err)
	}
	return ts, nil
}

// CloudRun invokes the functions as Cloud Run services: a POST of the
// JSON payload to the service URL with an ID token for it (Cloud Run's IAM
// checks roles/run.invoker). Answers map to typed errors: a HeliosError body
// keeps its kind; 429, and a 500 or 503 saying no instance is available,
// are throttling, retried here with backoff and then reported as throttled,
// which spends no attempt; any other 5xx without a HeliosError body (a
// crashed or out-of-memory instance, a 504 request timeout) or a broken
// connection means the worker was lost (retryable, spending an attempt, so
// a chunk that always kills its instance fails the job); 401 and 403
// mean the orchestrator may not invoke the service (permanent). The request
// lasts as long as the caller's context: the orchestrator bounds it by the
// chunk timeout.
type CloudRun struct {
	client   *http.Client
	services map[Function]cloudRunService
	// throttleBackoff paces the retries of throttled requests.
	throttleBackoff func() backoff.BackOff
	throttleTries   uint
	localToken      string
	browserURL      string
}

type cloudRunService struct {
	url    string
	tokens oauth2.TokenSource // ID tokens; the local token for a loopback http:// URL
}

// CloudRunOption adjusts a CloudRun.
type CloudRunOption func(*CloudRun)

// WithHTTPClient sets the HTTP client (default: one with a connection pool
// sized for many chunks in flight).
func WithHTTPClient(c *http.Client) CloudRunOption { return func(a *CloudRun) { a.client = c } }

// WithLocalToken sets the bearer token sent to loopback http:// services
// (HELIOS_HTTP_TOKEN: functions served on this machine require it).
func WithLocalToken(token string) CloudRunOption {
	return func(a *CloudRun) { a.localToken = token }
}

// WithThrottleRetry sets how throttled requests are retried before the
// adapter reports them: tries in all, paced by the backoff b makes.
func WithThrottleRetry(tries uint, b func() backoff.BackOff) CloudRunOption {
	return func(a *CloudRun) { a.throttleTries, a.throttleBackoff = tries, b }
}

// WithBrowserWorkerURL sets the URL of the worker service that renders
// Helios compositions (HELIOS_BROWSER_WORKER_URL); "" leaves those jobs to
// the worker.
func WithBrowserWorkerURL(u string) CloudRunOption { return func(a *CloudRun) { a.browserURL = u } }

// NewCloudRun makes a Cloud Run driver for the worker and stitcher service
// URLs (HELIOS_WORKER_URL, HELIOS_STITCHER_URL). https URLs are called with
// ID tokens from tokens (GoogleIDTokens if nil); plain http is accepted only
// for loopback addresses (functions served on this machine), called with
// the local token (WithLocalToken).
func NewCloudRun(ctx context.Context, workerURL, stitcherURL string, tokens IDTokenSource, opts ...CloudRunOption) (*CloudRun, error) {
	if tokens == nil {
		tokens = GoogleIDTokens
	}
	a := &CloudRun{
		client: &http.Client{Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			MaxIdleConnsPerHost: 256, // one connection per chunk in flight
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		}},
		services:      map[Function]cloudRunService{},
		throttleTries: 6,
		throttleBackoff: func() backoff.BackOff {
			return &backoff.ExponentialBackOff{InitialInterval: 500 * time.Millisecond, RandomizationFactor: 0.5,
				Multiplier: 2, MaxInterval: 20 * time.Second}
		},
	}
	for _, o := range opts {
		o(a)
	}
	urls := map[Function]string{Worker: workerURL, Stitcher: stitcherURL}
	if a.browserURL != "" {
		urls[BrowserWorker] = a.browserURL
	}
	for fn, u := range urls {
		if !config.ServiceURL(u) {
			return nil, fmt.Errorf("%s service URL %q: expected https:// (or http:// on loopback)", fn, u)
		}
		svc := cloudRunService{url: u}
		switch {
		case strings.HasPrefix(u, "https://"):
			ts, err := tokens(ctx, u)
			if err != nil {
				return nil, err
			}
			svc.tokens = ts
		case a.localToken != "":
			svc.tokens = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: a.localToken})
		}
		a.services[fn] = svc
	}
	return a, nil
}

// Has reports whether fn is configured.
func (a *CloudRun) Has(fn Function) bool { _, ok := a.services[fn]; return ok }

// errThrottled marks an answer worth retrying here, before the orchestrator
// sees it.
var errThrottled = errors.New("throttled")

// Invoke implements Driver.
func (a *CloudRun) Invoke(ctx context.Context, fn Function, payload []byte) ([]byte, error) {
	svc, ok := a.services[fn]
	if !ok {
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "no Cloud Run service configured for %s", fn)
	}
	var last *joberr.Error
	out, err := backoff.Retry(ctx, func() ([]byte, error) {
		out, err := a.post(ctx, svc, payload)
		var e *joberr.Error
		if errors.As(err, &e) && e.Code == joberr.CodeThrottled {
			last = e
			return nil, errThrottled
		}
		if err != nil {
			return nil, backoff.Permanent(err)
		}
		return out, nil
	}, backoff.WithBackOff(a.throttleBackoff()), backoff.WithMaxTries(a.throttleTries), backoff.WithMaxElapsedTime(0))
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, errThrottled):
		return nil, last
	}
	return out, err
}

// post makes one request and classifies the answer.
func (a *CloudRun) post(ctx context.Context, svc cloudRunService, payload []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, svc.url, bytes.NewReader(payload))
	if err != nil {
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "request to %s: %v", svc.url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if svc.tokens != nil {
		tok, err := svc.tokens.Token()
		if err != nil {
			// The metadata server or the IAM API did not answer: transient.
			return nil, joberr.Errorf(joberr.Retryable, joberr.CodeTransport, "ID token for %s: %v", svc.url, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, joberr.Errorf(joberr.Retryable, joberr.CodeWorkerLost, "invoke %s: %v", svc.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPayload+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, joberr.Errorf(joberr.Retryable, joberr.CodeWorkerLost, "invoke %s: reading the answer: %v", svc.url, err)
	}
	if resp.StatusCode == http.StatusOK {
		if len(body) > MaxPayload {
			return nil, joberr.Errorf(joberr.Permanent, joberr.CodePayloadTooLarge, "%s answered over %d bytes", svc.url, MaxPayload)
		}
		return body, nil
	}
	return nil, classifyHTTPAnswer(svc.url, resp, body)
}

// classifyHTTPAnswer turns a non-200 answer of a service into a typed error.
func classifyHTTPAnswer(url string, resp *http.Response, body []byte) *joberr.Error {
	if resp.Header.Get("X-Helios-Error") == joberr.ErrorType {
		var e joberr.Error
		if json.Unmarshal(body, &e) == nil && (e.Kind == joberr.Retryable || e.Kind == joberr.Permanent) {
			return &e
		}
	}
	snippet := strings.TrimSpace(string(body))
	if len(snippet) > 300 {
		snippet = snippet[:300] + "…"
	}
	code := resp.StatusCode
	switch {
	case code == http.StatusTooManyRequests,
		code >= 500 && strings.Contains(strings.ToLower(snippet), "no available instance"):
		// Cloud Run found no instance to take the request (max instances,
		// or scaling up too slowly): capacity, not the chunk.
		return joberr.Errorf(joberr.Retryable, joberr.CodeThrottled, "invoke %s: %s: no instance available: %s", url, resp.Status, snippet)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "invoke %s: %s: the caller's service account needs roles/run.invoker on the service: %s", url, resp.Status, snippet)
	case code == http.StatusRequestEntityTooLarge:
		return joberr.Errorf(joberr.Permanent, joberr.CodePayloadTooLarge, "invoke %s: %s", url, resp.Status)
	case code >= 500:
		// 500 with no HeliosError (a panic), 502 or 503 (the container's
		// connection broke, it crashed), 504 (request timeout): the worker
		// was lost.
		return joberr.Errorf(joberr.Retryable, joberr.CodeWorkerLost, "invoke %s: %s: %s", url, resp.Status, snippet)
	}
	return joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "invoke %s: %s: %s", url, resp.Status, snippet)
}
