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

	"github.com/helios-project/infrastructure/pkg/job"
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
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano())
	ttl := opts.TTL
	until := func(t time.Time) leaseDoc { return leaseDoc{Owner: owner, ExpiresAt: t.UTC()} }

	gens, err := s.leaseGens(ctx, id)
	if err != nil {
		return nil, err
	}
	current := 0
	if len(gens) > 0 {
		current = gens[len(gens)-1]
		var held leaseDoc
		err := storage.ReadJSON(ctx, s.bucket, job.LeaseKey(id, current), &held)
		if err != nil && !storage.IsNotFound(err) {
			return nil, err
		}
		if err == nil && time.Now().Before(held.ExpiresAt) && opts.Exclusive {
			log.Info("taking over the lease of an earlier run whose process is gone", "holder", held.Owner)
		} else if err == nil && time.Now().Before(held.ExpiresAt) {
			return nil, fmt.Errorf("job %q: %w (lease held by %s until %s)", id, ErrAlreadyRunning, held.Owner, held.ExpiresAt.Format(time.RFC3339))
		}
	}
	gen := current + 1
	key := job.LeaseKey(id, gen)
	err = storage.CreateJSON(ctx, s.bucket, key, until(time.Now().Add(ttl)))
	if errors.Is(err, storage.ErrExists) {
		return nil, fmt.Errorf("job %q: %w (lease generation %d taken first by another)", id, ErrAlreadyRunning, gen)
	}
	if err != nil {
		return nil, err
	}
	l := &Lease{Gen: gen, Exclusive: opts.Exclusive, ttl: ttl}
	l.renewed.Store(time.Now().UnixNano())
	// A contender that listed long ago may have created a stale generation
	// after a newer one: the highest generation is the holder.
	if newer, err := s.newerLease(ctx, id, gen); err != nil || newer {
		s.expire(context.WithoutCancel(ctx), key, until, log)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("job %q: %w (a newer lease generation exists)", id, ErrAlreadyRunning)
	}

	lost := func(cause error) {
		if opts.OnLost != nil {
			opts.OnLost(cause)
		}
	}
	stopRenewing := periodic.Every(context.WithoutCancel(ctx), ttl/3, func(ctx context.Context) bool {
		if !l.Valid() {
			// Stalled (a paused process, a hung call): someone may have taken
			// over already; renewing now could revive a lease they replaced.
			log.Error("lease not renewed for half its life; stopping", "generation", gen)
			lost(ErrLeaseNotRenewed)
			return false
		}
		ctx, cancel := context.WithTimeout(ctx, ttl/3)
		defer cancel()
		if newer, err := s.newerLease(ctx, id, gen); err == nil && newer {
			log.Error("another orchestrator took over the job; stopping", "generation", gen)
			lost(ErrLeaseLost)
			return false
		}
		if err := storage.WriteJSON(ctx, s.bucket, key, until(time.Now().Add(ttl))); err != nil {
			log.Warn("renew lease", "error", err)
			return true
		}
		l.renewed.Store(time.Now().UnixNano())
		return true
	})
	l.release = func() {
		stopRenewing()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ttl/3)
		defer cancel()
		if newer, err := s.newerLease(ctx, id, gen); err == nil && !newer {
			s.expire(ctx, key, until, log)
		}
	}
	return l, nil
}

// LeaseLive reports whether an orchestrator holds the job's lease.
func (s *Store) LeaseLive(ctx context.Context, id string) (bool, error) {
	gens, err := s.leaseGens(ctx, id)
	if err != nil || len(gens) == 0 {
		return false, err
	}
	var held leaseDoc
	err = storage.ReadJSON(ctx, s.bucket, job.LeaseKey(id, gens[len(gens)-1]), &held)
	if storage.IsNotFound(err) {
		return false, nil
	}
	return err == nil && time.Now().Before(held.ExpiresAt), err
}

// expire marks a lease expired, so the next run takes over at once.
func (s *Store) expire(ctx context.Context, key string, until func(time.Time) leaseDoc, log *slog.Logger) {
	if err := storage.WriteJSON(ctx, s.bucket, key, until(time.Unix(0, 0))); err != nil {
		log.Warn("release lease", "key", key, "error", err)
	}
}

// leaseGens lists the job's lease generations in ascending order.
func (s *Store) leaseGens(ctx context.Context, id string) ([]int, error) {
	keys, err := storage.List(ctx, s.bucket, job.LeasePrefix(id))
	if err != nil {
		return nil, err
	}
	var gens []int
	for _, k := range keys {
		if g, ok := job.LeaseGen(id, k); ok {
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
