// Package webhook tells a user's system that a job ended: an HTTPS POST of
// the job's summary, signed with HMAC-SHA256 over a timestamp and the body,
// retried with backoff, sent only to public addresses.
//
// A receiver checks a delivery with Verify (or the same few lines in any
// language; see docs/SPEC.md, "Webhooks"):
//
//	signature = hex(HMAC-SHA256(key, timestamp + "." + body))
//
// and refuses a timestamp older than a few minutes, so that a delivery
// captured on the way cannot be replayed later.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/helios-project/infrastructure/pkg/netguard"
)

// Headers of a delivery.
const (
	HeaderTimestamp = "Helios-Webhook-Timestamp" // Unix seconds when it was signed
	HeaderSignature = "Helios-Webhook-Signature" // "v1=" + hex HMAC-SHA256 of timestamp "." body
	HeaderID        = "Helios-Webhook-Id"        // <jobId>.<state>: the same for every retry of one outcome
)

// DefaultTolerance is how old a delivery's timestamp may be for Verify.
const DefaultTolerance = 5 * time.Minute

// Sign returns the signature header's value for body signed at ts.
func Sign(key []byte, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%d.", ts.Unix())
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Errors of Verify.
var (
	ErrBadSignature = errors.New("webhook: signature does not match")
	ErrStale        = errors.New("webhook: timestamp outside the tolerance (a replay?)")
)

// Verify checks a delivery's timestamp and signature headers against its
// body: the signature must be the key's, and the timestamp within
// tolerance of now.
func Verify(key []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook: timestamp %q: %w", timestamp, err)
	}
	ts := time.Unix(sec, 0)
	if !hmac.Equal([]byte(Sign(key, ts, body)), []byte(signature)) {
		return ErrBadSignature
	}
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s ago", ErrStale, d.Round(time.Second))
	}
	return nil
}

// Sender delivers events.
type Sender struct {
	Key []byte // the deployment's signing key (HELIOS_WEBHOOK_SECRET)
	// AllowPrivate lets deliveries reach loopback, private and link-local
	// addresses (tests, a receiver on the same machine).
	AllowPrivate bool
	// Retry: tries in all and the backoff between them (defaults: 6 tries,
	// 1 s doubling to 30 s).
	Tries   uint
	Backoff func() backoff.BackOff
	Now     func() time.Time
}

// Send POSTs body to url, signed, until the receiver answers 2xx, refuses
// it for good (another 4xx than 408 or 429), or the tries run out. It
// follows no redirect and connects only to addresses the guard allows,
// whatever the name resolves to at the moment of connecting.
func (s *Sender) Send(ctx context.Context, rawURL, id string, body []byte) error {
	if err := CheckURL(rawURL, s.AllowPrivate); err != nil {
		return err
	}
	client := s.client()
	defer client.CloseIdleConnections()
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		return struct{}{}, s.deliver(ctx, client, rawURL, id, body)
	}, s.retryOptions()...)
	return err
}

// client follows no redirect and connects only where the guard allows.
func (s *Sender) client() *http.Client {
	return &http.Client{
		Timeout: 15 * time.Second,
		Transport: &http.Transport{
			DialContext:         netguard.Dialer(10*time.Second, s.AllowPrivate).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// retryOptions are the tries and backoff of s, or their defaults.
func (s *Sender) retryOptions() []backoff.RetryOption {
	tries := s.Tries
	if tries == 0 {
		tries = 6
	}
	next := s.Backoff
	if next == nil {
		next = func() backoff.BackOff {
			return &backoff.ExponentialBackOff{InitialInterval: time.Second, RandomizationFactor: 0.3, Multiplier: 2, MaxInterval: 30 * time.Second}
		}
	}
	return []backoff.RetryOption{backoff.WithBackOff(next()), backoff.WithMaxTries(tries), backoff.WithMaxElapsedTime(0)}
}

// deliver makes one try, signed now. The error is backoff.Permanent if
// another try cannot help.
func (s *Sender) deliver(ctx context.Context, client *http.Client, rawURL, id string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		return backoff.Permanent(err)
	}
	now := s.Now
	if now == nil {
		now = time.Now
	}
	ts := now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "helios-webhook/1")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(s.Key, ts, body))
	req.Header.Set(HeaderID, id)
	resp, err := client.Do(req)
	if err != nil {
		var refused *netguard.RefusedError
		if errors.As(err, &refused) {
			return backoff.Permanent(fmt.Errorf("webhook: %w", refused))
		}
		// Not the *url.Error itself: it quotes the whole URL, and a
		// receiver's token may be in its path or query.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook %s: %w", Redact(rawURL), err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("webhook %s answered %s", Redact(rawURL), resp.Status)
	default:
		return backoff.Permanent(fmt.Errorf("webhook %s refused the delivery: %s", Redact(rawURL), resp.Status))
	}
}

// Redact is what messages and logs say of a webhook URL: its scheme and
// host only, as its path or query may hold the receiver's token.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(a webhook URL)"
	}
	return u.Scheme + "://" + u.Host + "/…"
}
