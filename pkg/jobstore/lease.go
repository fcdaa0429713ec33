package jobstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/periodic"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// leaseDoc is the content of renders/<id>/lease.<gen>.
type leaseDoc struct {
	Owner     string    `json:"owner"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// LeaseOptions say how a lease is taken and kept.
type LeaseOptions struct {
	// TTL is how long the lease lasts without renewal; it is renewed every
	// third of it.
	TTL time.Duration
	// Exclusive says that no other orchestrator can be running the job (the
	// CLI holds a per-job file lock): a live lease of an earlier run belongs
	// to a process that is gone, and is taken over at once.
	Exclusive bool
	// OnLost is called once if the lease stops being surely the holder's:
	// with ErrLeaseLost when a newer generation appears, with
	// ErrLeaseNotRenewed when it goes unrenewed for half its life.
	OnLost func(cause error)
	// Log hears about renewals and releases that fail.
	Log *slog.Logger
}

// Lease is a held lease on a job: while it is valid, its holder is the only
// orchestrator running the job.
type Lease struct {
	Gen       int  // the generation, which also numbers the run in segment keys
	Exclusive bool // taken with LeaseOptions.Exclusive

	ttl     time.Duration
	renewed atomic.Int64 // unix nanoseconds of the last successful renewal
	release func()
}

// Valid reports whether the lease is surely still its holder's: renewed
// within half its life. Status writes are made only while it is.
func (l *Lease) Valid() bool {
	return time.Since(time.Unix(0, l.renewed.Load())) < l.ttl/2
}

// Release stops renewing the lease and marks it expired, so the next run
// takes over at once.
func (l *Lease) Release() { l.release() }

// AcquireLease takes the job's next lease generation and keeps renewing it
// until Release. Leases are generations, each created if not exists, so
// taking over an expired lease needs no conditional delete: of two
// orchestrators that both see generation n expired, exactly one creates
// n+1. Generations only grow (a lease is released by marking it expired,
// never deleted). A live lease of another holder is ErrAlreadyRunning.
func (s *Store) AcquireLease(ctx context.Context, id string, opts LeaseOptions) (*Lease, error) {
	log := opts.Log
	if log == nil {
		log = s.log
	}
	current, err := s.currentLease(ctx, id, opts.Exclusive, log)
	if err != nil {
		return nil, err
	}
	h := s.newHolder(id, current+1, opts.TTL, log)
	if err := h.create(ctx); err != nil {
		return nil, err
	}
	l := &Lease{Gen: h.gen, Exclusive: opts.Exclusive, ttl: opts.TTL}
	l.renewed.Store(time.Now().UnixNano())
	// A contender that listed long ago may have created a stale generation
	// after a newer one: the highest generation is the holder.
	if newer, err := s.newerLease(ctx, id, h.gen); err != nil || newer {
		h.expire(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("job %q: %w (a newer lease generation exists)", id, ErrAlreadyRunning)
	}
	l.release = h.keep(ctx, l, opts.OnLost)
	return l, nil
}

// currentLease returns the job's highest lease generation (0 if none) once
// it may be taken over: expired, gone, or live but exclusive (its holder's
// process is gone). Live otherwise, it is ErrAlreadyRunning.
func (s *Store) currentLease(ctx context.Context, id string, exclusive bool, log *slog.Logger) (int, error) {
	gens, err := s.leaseGens(ctx, id)
	if err != nil || len(gens) == 0 {
		return 0, err
	}
	current := gens[len(gens)-1]
	var held leaseDoc
	err = storage.ReadJSON(ctx, s.bucket, layout.LeaseKey(id, current), &held)
	if err != nil && !storage.IsNotFound(err) {
		return 0, err
	}
	live := err == nil && time.Now().Before(held.ExpiresAt)
	switch {
	case live && exclusive:
		log.Info("taking over the lease of an earlier run whose process is gone", "holder", held.Owner)
	case live:
		return 0, fmt.Errorf("job %q: %w (lease held by %s until %s)", id, ErrAlreadyRunning, held.Owner, held.ExpiresAt.Format(time.RFC3339))
	}
	return current, nil
}

// holder writes one lease generation of a job, as its owner.
type holder struct {
	s     *Store
	id    string
	gen   int
	key   string
	owner string
	ttl   time.Duration
	log   *slog.Logger
}

func (s *Store) newHolder(id string, gen int, ttl time.Duration, log *slog.Logger) *holder {
	host, _ := os.Hostname()
	return &holder{s: s, id: id, gen: gen, key: layout.LeaseKey(id, gen), ttl: ttl, log: log,
		owner: fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano())}
}

func (h *holder) until(t time.Time) leaseDoc { return leaseDoc{Owner: h.owner, ExpiresAt: t.UTC()} }

// create creates the generation; ErrAlreadyRunning if another got it first.
func (h *holder) create(ctx context.Context) error {
	err := storage.CreateJSON(ctx, h.s.bucket, h.key, h.until(time.Now().Add(h.ttl)))
	if errors.Is(err, storage.ErrExists) {
		return fmt.Errorf("job %q: %w (lease generation %d taken first by another)", h.id, ErrAlreadyRunning, h.gen)
	}
	return err
}

// keep renews l every third of its life until the release it returns,
// which marks it expired unless a newer generation has taken over. onLost
// (if not nil) hears once why it stopped being surely l's holder's.
func (h *holder) keep(ctx context.Context, l *Lease, onLost func(cause error)) (release func()) {
	lost := func(cause error) {
		if onLost != nil {
			onLost(cause)
		}
	}
	stopRenewing := periodic.Every(context.WithoutCancel(ctx), h.ttl/3, func(ctx context.Context) bool {
		return h.renew(ctx, l, lost)
	})
	return func() {
		stopRenewing()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.ttl/3)
		defer cancel()
		if newer, err := h.s.newerLease(ctx, h.id, h.gen); err == nil && !newer {
			h.expire(ctx)
		}
	}
}

// renew renews l once; false stops the renewals, after telling lost why.
func (h *holder) renew(ctx context.Context, l *Lease, lost func(cause error)) bool {
	if !l.Valid() {
		// Stalled (a paused process, a hung call): someone may have taken
		// over already; renewing now could revive a lease they replaced.
		h.log.Error("lease not renewed for half its life; stopping", "generation", h.gen)
		lost(ErrLeaseNotRenewed)
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, h.ttl/3)
	defer cancel()
	if newer, err := h.s.newerLease(ctx, h.id, h.gen); err == nil && newer {
		h.log.Error("another orchestrator took over the job; stopping", "generation", h.gen)
		lost(ErrLeaseLost)
		return false
	}
	if err := storage.WriteJSON(ctx, h.s.bucket, h.key, h.until(time.Now().Add(h.ttl))); err != nil {
		h.log.Warn("renew lease", "error", err)
		return true
	}
	l.renewed.Store(time.Now().UnixNano())
	return true
}

// expire marks the lease expired, so the next run takes over at once.
func (h *holder) expire(ctx context.Context) {
	if err := storage.WriteJSON(ctx, h.s.bucket, h.key, h.until(time.Unix(0, 0))); err != nil {
		h.log.Warn("release lease", "key", h.key, "error", err)
	}
}

// LeaseLive reports whether an orchestrator holds the job's lease.
func (s *Store) LeaseLive(ctx context.Context, id string) (bool, error) {
	gens, err := s.leaseGens(ctx, id)
	if err != nil || len(gens) == 0 {
		return false, err
	}
	var held leaseDoc
	err = storage.ReadJSON(ctx, s.bucket, layout.LeaseKey(id, gens[len(gens)-1]), &held)
	if storage.IsNotFound(err) {
		return false, nil
	}
	return err == nil && time.Now().Before(held.ExpiresAt), err
}

// leaseGens lists the job's lease generations in ascending order.
func (s *Store) leaseGens(ctx context.Context, id string) ([]int, error) {
	keys, err := storage.List(ctx, s.bucket, layout.LeasePrefix(id))
	if err != nil {
		return nil, err
	}
	var gens []int
	for _, k := range keys {
		if g, ok := layout.LeaseGen(id, k); ok {
			gens = append(gens, g)
		}
	}
	slices.Sort(gens)
	return gens, nil
}

func (s *Store) newerLease(ctx context.Context, id string, gen int) (bool, error) {
	gens, err := s.leaseGens(ctx, id)
	if err != nil {
		return false, err
	}
	return len(gens) > 0 && gens[len(gens)-1] > gen, nil
}
