package orchestrator

import (
	"container/list"
	"context"
	"math"
	"slices"
	"sync"
	"time"
)

// HedgePolicy tunes hedged chunks: a chunk whose attempt runs well past
// what the job's finished attempts took gets a second attempt beside it,
// and the first to complete the chunk wins (speculative execution, as in
// MapReduce and Spark). Zero values take the defaults.
type HedgePolicy struct {
	// Share caps the hedges of a run at this fraction of its chunks, with
	// at least one (default 0.05). Negative turns hedging off.
	Share float64
	// After is the least multiple of the median attempt an attempt must
	// have run to be a straggler (default 2); a job whose attempts vary
	// more waits longer (hedger.threshold).
	After float64
	// MinWait is the least an attempt runs before it may be hedged, so
	// that chunks of a second or two are not hedged for ordinary jitter
	// (default 2s).
	MinWait time.Duration
	// MinSamples is how many attempts must have finished before the
	// median is trusted (default 4).
	MinSamples int
}

// Hedging defaults.
const (
	DefaultHedgeShare      = 0.05
	DefaultHedgeAfter      = 2
	DefaultHedgeMinWait    = 2 * time.Second
	DefaultHedgeMinSamples = 4
)

func (p HedgePolicy) withDefaults() HedgePolicy {
	if p.Share == 0 {
		p.Share = DefaultHedgeShare
	}
	if p.After <= 0 {
		p.After = DefaultHedgeAfter
	}
	if p.MinWait <= 0 {
		p.MinWait = DefaultHedgeMinWait
	}
	if p.MinSamples <= 0 {
		p.MinSamples = DefaultHedgeMinSamples
	}
	return p
}

// hedger watches a run's attempts and hands a free dispatch lane to the
// oldest straggler, one hedge per attempt, within the run's budget.
//
// The median is taken over every attempt started, the unfinished ones
// counting as longer than any finished: it is known once half of them
// have finished, and the attempts still running can only make it larger,
// never smaller. A plain median of the finished would be biased low early
// in a job, when the fastest attempts are the only ones back.
type hedger struct {
	policy HedgePolicy
	budget int // hedges this run may start
	wake   chan struct{}

	mu       sync.Mutex
	used     int             // hedges started
	tracked  int             // attempts started, not counting hedges
	started  int             // attempts that count: finished, running, or superseded
	finished []time.Duration // sorted
	flights  *list.List      // of *flight not yet hedged, oldest first
	drained  bool            // every chunk has started: lanes only come free from now on
}

// flight is one attempt the hedger may hedge.
type flight struct {
	start time.Time
	elem  *list.Element // in hedger.flights; nil once hedged or done
	lane  chan int      // the hedge's lane, when the hedger starts one
}

// newHedger returns nil (no hedging) when the policy turns it off.
func newHedger(p HedgePolicy, chunks int) *hedger {
	p = p.withDefaults()
	if p.Share < 0 || chunks == 0 {
		return nil
	}
	return &hedger{
		policy:  p,
		budget:  max(1, int(math.Floor(p.Share*float64(chunks)))),
		wake:    make(chan struct{}, 1),
		flights: list.New(),
	}
}

func (h *hedger) signal() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// track registers a primary attempt that started now. On a nil hedger it
// returns a flight that is never hedged.
func (h *hedger) track() *flight {
	f := &flight{start: time.Now(), lane: make(chan int, 1)}
	if h == nil {
		return f
	}
	h.mu.Lock()
	h.started++
	h.tracked++
	f.elem = h.flights.PushBack(f)
	h.mu.Unlock()
	h.signal()
	return f
}

// untrack ends f (again is fine; nil is none); a lane handed to it too
// late goes back to lanes, and the hedger hears of it.
func (h *hedger) untrack(f *flight, lanes chan<- int) {
	if h == nil || f == nil {
		return
	}
	h.mu.Lock()
	if f.elem != nil {
		h.flights.Remove(f.elem)
		f.elem = nil
	}
	h.mu.Unlock()
	select {
	case l := <-f.lane:
		lanes <- l
		h.signal()
	default:
	}
}

// drain says that every chunk of the run has started: from now on lanes
// fall idle as attempts finish, and a hedge holds nothing else back, so
// the stragglers that decide when the job ends are hedged sooner (at the
// fitted 90th percentile, and at least 1.5 × the median).
func (h *hedger) drain() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.drained = true
	h.mu.Unlock()
	h.signal()
}

// hedgeStarted counts a hedge's attempt among those the median is over.
func (h *hedger) hedgeStarted() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.started++
	h.mu.Unlock()
}

// finishedIn records an attempt that completed its chunk in took.
func (h *hedger) finishedIn(took time.Duration) {
	if h == nil {
		return
	}
	h.mu.Lock()
	i, _ := slices.BinarySearch(h.finished, took)
	h.finished = slices.Insert(h.finished, i, took)
	h.mu.Unlock()
	h.signal()
}

// failed takes an attempt that failed out of the median: its time says
// nothing about how long the chunk takes.
func (h *hedger) failed() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.started--
	h.mu.Unlock()
}

// threshold is how long an attempt may run before it is a straggler, or
// false while too few attempts have finished to tell. h.mu is held.
//
// It is the 99th percentile of a lognormal fitted to the faster half of
// the attempts (median and lower quartile, both known early and untouched
// by stragglers), and at least After × the median: a job whose chunks
// vary little hedges sooner than one whose chunks vary a lot, and neither
// spends its budget on chunks that are merely long.
func (h *hedger) threshold() (time.Duration, bool) {
	k50, k25 := (h.started+1)/2, (h.started+3)/4 // ranks among the attempts started
	if len(h.finished) < h.policy.MinSamples || len(h.finished) < k50 || k25 == 0 {
		return 0, false
	}
	median, quartile := h.finished[k50-1], h.finished[k25-1]
	// ln(median/quartile) = 0.6745σ; the 99th percentile is median·e^(2.326σ)
	// and the 90th median·e^(1.2816σ).
	z, least := 2.326, h.policy.After
	if h.drained {
		z, least = 1.2816, min(least, 1.5)
	}
	fitted := math.Pow(float64(median)/float64(max(quartile, 1)), z/0.6745)
	return max(time.Duration(max(least, fitted)*float64(median)), h.policy.MinWait), true
}

// affordable reports whether one more hedge fits the budget, paced: the
// hedges so far stay within Share of the attempts started so far, so the
// stragglers of a job's first waves cannot spend what its last waves,
// whose stragglers decide when it ends, need. h.mu is held.
func (h *hedger) affordable() bool {
	paced := max(1, int(h.policy.Share*float64(h.tracked)))
	return h.used < min(h.budget, paced)
}

// due returns the oldest unhedged attempt if it is a straggler now, else
// how long until it would be (0: unknown, wait for news). h.mu is held.
func (h *hedger) due(now time.Time) (*flight, time.Duration) {
	front := h.flights.Front()
	if front == nil || !h.affordable() {
		return nil, 0
	}
	limit, ok := h.threshold()
	if !ok {
		return nil, 0
	}
	f := front.Value.(*flight)
	if wait := f.start.Add(limit).Sub(now); wait > 0 {
		return nil, wait
	}
	return f, 0
}

// sleep waits for wait (0: for news only), news or ctx's end, and reports
// whether to go on.
func (h *hedger) sleep(ctx context.Context, wait time.Duration) bool {
	var timer <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
	case <-h.wake:
	case <-ctx.Done():
		return false
	}
	return true
}

// offer gives a lane that has just come free to the oldest straggler, if
// one is due, before any other attempt can take it: a straggler is late
// already, a chunk not started yet is not. It reports whether it took it.
func (h *hedger) offer(lane int) bool {
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	f, _ := h.due(time.Now())
	if f == nil {
		return false
	}
	h.flights.Remove(f.elem)
	f.elem = nil
	h.used++
	f.lane <- lane
	return true
}

// run hedges stragglers that come due while lanes are idle (lanes that
// come free are offered as they do), until ctx ends or the budget is spent.
func (h *hedger) run(ctx context.Context, lanes chan int) {
	for {
		h.mu.Lock()
		f, wait := h.due(time.Now())
		spent := h.used >= h.budget
		h.mu.Unlock()
		if spent {
			return
		}
		if f != nil {
			select {
			case lane := <-lanes:
				if !h.offer(lane) {
					lanes <- lane
				}
				continue
			default:
				wait = 0 // no idle lane: the next to come free is offered
			}
		}
		if !h.sleep(ctx, wait) {
			return
		}
	}
}
