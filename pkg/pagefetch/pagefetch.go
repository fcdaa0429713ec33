// Package pagefetch fetches, outside the sandbox, what a page rendered in
// it asks of other origins. A job's command has no network; a composition
// that loads its fonts from Google Fonts would otherwise render in a
// fallback face. The deployment names the origins it trusts
// (HELIOS_RENDER_ORIGINS); the worker serves a Fetcher on a Unix socket in
// each chunk's work dir, and the renderer asks it as a forward proxy
// (absolute-form GET requests) for every request of the page to another
// origin. It fetches only those origins, only GET, only from public
// addresses, with no cookies or credentials, and keeps what it fetched for
// the worker's later chunks.
package pagefetch

import (
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/helios-project/infrastructure/pkg/netguard"
)

// HeaderRefused marks an answer that refuses the request for good: the
// origin is not allowed. Its body says why and what to do.
const HeaderRefused = "X-Helios-Refused"

// Defaults.
const (
	DefaultMaxBytes   = 64 << 20  // one response
	DefaultCacheBytes = 256 << 20 // everything kept
	DefaultInFlight   = 4         // fetches at once, whatever the pages ask: at most 4 × 64 MB in memory
	DefaultMaxAge     = time.Hour // how long a response without max-age is kept
	MaxMaxAge         = 24 * time.Hour
)

// passed are the response headers a page sees: what the browser needs to
// use the resource (type, CORS for fonts, validators).
var passed = []string{"Content-Type", "Access-Control-Allow-Origin", "Timing-Allow-Origin", "Cross-Origin-Resource-Policy", "Last-Modified", "Etag"}

// Options tune a Fetcher; the zero value is what deployments use.
type Options struct {
	// Client makes the requests; nil: public addresses only, 30 s a request.
	Client     *http.Client
	MaxBytes   int64 // the largest response fetched; 0: DefaultMaxBytes
	CacheBytes int64 // the most kept; 0: DefaultCacheBytes
	InFlight   int   // fetches at once; 0: DefaultInFlight
	Now        func() time.Time
}

// Fetcher answers a page's requests to the allowed origins.
type Fetcher struct {
	origins  map[string]bool
	list     string // the allowed origins, for messages
	client   *http.Client
	maxBytes int64
	cache    *cache
	flight   singleflight.Group
	slots    chan struct{} // one per fetch in flight
	now      func() time.Time
}

// New returns a Fetcher of origins, each as Origin accepts it. With none,
// it refuses every request, saying how to allow one.
func New(origins []string, o Options) (*Fetcher, error) {
	f := &Fetcher{origins: map[string]bool{}, client: o.Client, maxBytes: o.MaxBytes}
	var names []string
	for _, raw := range origins {
		origin, err := Origin(raw)
		if err != nil {
			return nil, err
		}
		f.origins[origin] = true
		names = append(names, origin)
	}
	f.list = strings.Join(names, ", ")
	if f.client == nil {
		f.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext:         netguard.Dialer(10*time.Second, false).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 4,
		}}
	}
	if f.maxBytes <= 0 {
		f.maxBytes = DefaultMaxBytes
	}
	f.client = withRedirectCheck(f.client, f.allowed)
	f.cache = newCache(o.CacheBytes)
	f.slots = make(chan struct{}, cmp.Or(o.InFlight, DefaultInFlight))
	f.now = o.Now
	if f.now == nil {
		f.now = time.Now
	}
	return f, nil
}

// Origin reads an origin as the deployment names it: https://host or
// https://host:port (or http://, for an origin without TLS), and returns
// it normalized (lower case, default port dropped).
func Origin(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("origin %q: expected scheme and host only, such as https://fonts.gstatic.com", raw)
	}
	return origin(u), nil
}

func origin(u *url.URL) string {
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return u.Scheme + "://" + host
}

func (f *Fetcher) allowed(u *url.URL) bool { return f.origins[origin(u)] }

// withRedirectCheck follows a redirect only to an allowed origin.
func withRedirectCheck(c *http.Client, allowed func(*url.URL) bool) *http.Client {
	cc := *c
	cc.Jar = nil // no cookies, ever
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("more than 5 redirects")
		}
		if !allowed(req.URL) {
			return &refusal{why: fmt.Sprintf("it redirects to %s, which is not an allowed origin", origin(req.URL))}
		}
		return nil
	}
	return &cc
}

// refusal is a request no retry can change.
type refusal struct{ why string }

func (r *refusal) Error() string { return r.why }

// Serve answers on a Unix socket at path until the returned Closer is
// closed. The worker puts it in the command's work dir, which the sandbox
// lets the command reach.
func (f *Fetcher) Serve(path string) (io.Closer, error) {
	l, err := listenUnix(path)
	if err != nil {
		return nil, fmt.Errorf("pagefetch: listen on %s: %w", path, err)
	}
	srv := &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	return srv, nil
}

// listenUnix listens on a Unix socket at path. A path longer than a
// socket address holds (108 bytes) is reached through its directory's
// descriptor under /proc/self/fd, which Linux resolves when binding.
func listenUnix(path string) (net.Listener, error) {
	if len(path) < 100 {
		return net.Listen("unix", path)
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	l, err := net.Listen("unix", fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path)))
	if err != nil {
		return nil, err
	}
	// The listener would unlink the /proc path on Close, which names
	// nothing then; the socket goes with the work dir.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	return l, nil
}

// entry is a fetched response as kept.
type entry struct {
	status  int
	header  http.Header
	body    []byte
	expires time.Time
}

// ServeHTTP answers one request of the page: the resource, or 403 with
// HeaderRefused and the reason, or 502 when the origin could not be
// reached (which a retry may change).
func (f *Fetcher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if why := f.forbidden(r); why != "" {
		refuse(w, why)
		return
	}
	u := r.URL
	e, err := f.get(r)
	var ref *refusal
	var guard *netguard.RefusedError
	switch {
	case errors.As(err, &ref):
		refuse(w, fmt.Sprintf("%s: %s", u.Redacted(), ref.why))
		return
	case errors.As(err, &guard):
		refuse(w, fmt.Sprintf("%s: %s resolves to an address that is not public", u.Redacted(), u.Hostname()))
		return
	case err != nil:
		http.Error(w, fmt.Sprintf("fetching %s: %v", u.Redacted(), err), http.StatusBadGateway)
		return
	}
	for _, h := range passed {
		if v := e.header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(e.status)
	if r.Method == http.MethodGet {
		w.Write(e.body)
	}
}

// forbidden says why r is not a request the fetcher makes, or "".
func (f *Fetcher) forbidden(r *http.Request) string {
	u := r.URL
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		return fmt.Sprintf("a page may only GET from other origins, not %s", r.Method)
	case !u.IsAbs() || (u.Scheme != "https" && u.Scheme != "http"):
		return "expected an absolute http(s) URL (a forward proxy's request)"
	case u.User != nil:
		return "a URL with a user or password is not fetched"
	case len(f.origins) == 0:
		return fmt.Sprintf("this deployment fetches no origin for pages (HELIOS_RENDER_ORIGINS is empty; add %s to it to allow this one)", origin(u))
	case !f.allowed(u):
		return fmt.Sprintf("%s is not an origin this deployment fetches for pages (HELIOS_RENDER_ORIGINS: %s)", origin(u), f.list)
	}
	return ""
}

// refuse answers 403 with HeaderRefused and why.
func refuse(w http.ResponseWriter, why string) {
	w.Header().Set(HeaderRefused, "1")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	io.WriteString(w, why)
}

// get returns the response to r from the cache, or fetched once for all
// the requests that want it at the moment, a few fetches at a time.
func (f *Fetcher) get(r *http.Request) (*entry, error) {
	u := r.URL
	ua, accept := r.Header.Get("User-Agent"), r.Header.Get("Accept")
	key := u.String() + "\n" + ua + "\n" + accept
	if e, ok := f.cache.get(key, f.now()); ok {
		return e, nil
	}
	v, err, _ := f.flight.Do(key, func() (any, error) {
		f.slots <- struct{}{}
		defer func() { <-f.slots }()
		return f.fetch(r, u, ua, accept, key)
	})
	if err != nil {
		return nil, err
	}
	return v.(*entry), nil
}

// fetch GETs u with the page's User-Agent and Accept (a font service
// answers each browser with the formats it reads) and nothing else of the
// page's: no cookies, no credentials.
func (f *Fetcher) fetch(r *http.Request, u *url.URL, ua, accept, key string) (*entry, error) {
	// Not the page's context: others may be waiting on this fetch.
	req, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, &refusal{why: err.Error()}
	}
	if ua != "" {
		req.Header.Set("User-Agent", ua)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > f.maxBytes {
		return nil, &refusal{why: fmt.Sprintf("the response is larger than %d MB", f.maxBytes>>20)}
	}
	e := &entry{status: resp.StatusCode, header: resp.Header, body: body}
	if ttl := keepFor(resp); resp.StatusCode == http.StatusOK && ttl > 0 {
		e.expires = f.now().Add(ttl)
		f.cache.put(key, e)
	}
	return e, nil
}

// keepFor is how long a response may be kept for every job of the worker:
// not at all when its origin says so (no-store, no-cache, private: it may
// be someone's own), else its max-age, at most MaxMaxAge, DefaultMaxAge
// without one.
func keepFor(resp *http.Response) time.Duration {
	cc := strings.ToLower(resp.Header.Get("Cache-Control"))
	if strings.Contains(cc, "no-store") || strings.Contains(cc, "no-cache") || strings.Contains(cc, "private") {
		return 0
	}
	for _, d := range strings.Split(cc, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(d), "max-age="); ok {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return 0
			}
			return min(time.Duration(n)*time.Second, MaxMaxAge)
		}
	}
	return DefaultMaxAge
}

// cache keeps entries up to a number of bytes, dropping the least recently
// used.
type cache struct {
	mu    sync.Mutex
	limit int64
	size  int64
	order *list.List // of *item, most recent first
	items map[string]*list.Element
}

type item struct {
	key string
	e   *entry
}

func newCache(limit int64) *cache {
	if limit <= 0 {
		limit = DefaultCacheBytes
	}
	return &cache{limit: limit, order: list.New(), items: map[string]*list.Element{}}
}

func (c *cache) get(key string, now time.Time) (*entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false
	}
	it := el.Value.(*item)
	if !now.Before(it.e.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		c.size -= int64(len(it.e.body))
		return nil, false
	}
	c.order.MoveToFront(el)
	return it.e, true
}

func (c *cache) put(key string, e *entry) {
	n := int64(len(e.body))
	if n > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[key]; ok {
		return
	}
	c.items[key] = c.order.PushFront(&item{key: key, e: e})
	c.size += n
	for c.size > c.limit {
		last := c.order.Back()
		it := last.Value.(*item)
		c.order.Remove(last)
		delete(c.items, it.key)
		c.size -= int64(len(it.e.body))
	}
}
