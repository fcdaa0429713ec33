package orchestrator

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
	"github.com/helios-project/infrastructure/pkg/storage"
)

// ErrAlreadyRunning means another orchestrator holds the job's lease: a
// duplicate trigger, or a second `helios job run` of the same job.
var ErrAlreadyRunning = errors.New("job is already being run by another orchestrator")

// ErrLeaseLost means the run stopped because another orchestrator took the
// job over (a newer lease generation exists); the job, and its status, are
// the other's now.
var ErrLeaseLost = errors.New("lease lost to another orchestrator")

// errLeaseNotRenewed stops a run that could not renew its lease in time:
// another orchestrator may take over at any moment, so this one stops
// writing. Unlike ErrLeaseLost the job may have no holder now: the caller
// must treat the run as interrupted, so the job is resumed.
var errLeaseNotRenewed = errors.New("lease could not be renewed in time")

// lease is the content of renders/<id>/lease.<gen>.
type lease struct {
	Owner     string    `json:"owner"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// heldLease is the lease of a running orchestrator.
type heldLease struct {
	gen       int
	exclusive bool // no other orchestrator can run the job (RunOptions.Exclusive)
	key       string
	ttl       time.Duration
	renewed   atomic.Int64 // unix nanoseconds of the last successful renewal
	release   func()
}

// valid reports whether the lease is surely still ours: renewed within half
// its life. Status writes are made only while it is.
func (l *heldLease) valid() bool {
	return time.Since(time.Unix(0, l.renewed.Load())) < l.ttl/2
}

// acquireLease takes the job's next lease generation. Leases are
// generations, each created if not exists, so taking over an expired lease
// needs no conditional delete: of two orchestrators that both see
// generation n expired, exactly one creates n+1. Generations only grow (a
// lease is released by marking it expired, never deleted), so the
// generation also numbers the run in segment keys. The run's context is
// cancelled with ErrLeaseLost if a newer generation appears, and with
// errLeaseNotRenewed if the lease goes unrenewed for half its life.
func (o *Orchestrator) acquireLease(ctx context.Context, id string, exclusive bool, stop context.CancelCauseFunc, log *slog.Logger) (*heldLease, error) {
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano())
	ttl := o.cfg.LeaseTTL
	until := func(t time.Time) lease { return lease{Owner: owner, ExpiresAt: t.UTC()} }

	gens, err := o.leaseGens(ctx, id)
	if err != nil {
		return nil, err
	}
	current := 0
	if len(gens) > 0 {
		current = gens[len(gens)-1]
		var held lease
		err := storage.ReadJSON(ctx, o.bucket, job.LeaseKey(id, current), &held)
		if err != nil && !storage.IsNotFound(err) {
			return nil, err
		}
		if err == nil && time.Now().Before(held.ExpiresAt) && exclusive {
			log.Info("taking over the lease of an earlier run whose process is gone", "holder", held.Owner)
		} else if err == nil && time.Now().Before(held.ExpiresAt) {
			return nil, fmt.Errorf("job %q: %w (lease held by %s until %s)", id, ErrAlreadyRunning, held.Owner, held.ExpiresAt.Format(time.RFC3339))
		}
	}
	gen := current + 1
	key := job.LeaseKey(id, gen)
	err = storage.CreateJSON(ctx, o.bucket, key, until(time.Now().Add(ttl)))
	if errors.Is(err, storage.ErrExists) {
		return nil, fmt.Errorf("job %q: %w (lease generation %d taken first by another)", id, ErrAlreadyRunning, gen)
	}
	if err != nil {
		return nil, err
	}
	l := &heldLease{gen: gen, key: key, ttl: ttl, exclusive: exclusive}
	l.renewed.Store(time.Now().UnixNano())
	// A contender that listed long ago may have created a stale generation
	// after a newer one: the highest generation is the holder.
	if newer, err := o.newerLease(ctx, id, gen); err != nil || newer {
		o.expire(context.WithoutCancel(ctx), key, until, log)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("job %q: %w (a newer lease generation exists)", id, ErrAlreadyRunning)
	}

	stopRenewing := every(context.WithoutCancel(ctx), ttl/3, func(ctx context.Context) bool {
		if !l.valid() {
			// Stalled (a paused process, a hung call): someone may have taken
			// over already; renewing now could revive a lease they replaced.
			log.Error("lease not renewed for half its life; stopping", "generation", gen)
			stop(errLeaseNotRenewed)
			return false
		}
		ctx, cancel := context.WithTimeout(ctx, ttl/3)
		defer cancel()
		if newer, err := o.newerLease(ctx, id, gen); err == nil && newer {
			log.Error("another orchestrator took over the job; stopping", "generation", gen)
			stop(ErrLeaseLost)
			return false
		}
		if err := storage.WriteJSON(ctx, o.bucket, key, until(time.Now().Add(ttl))); err != nil {
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
		if newer, err := o.newerLease(ctx, id, gen); err == nil && !newer {
			o.expire(ctx, key, until, log)
		}
	}
	return l, nil
}

// expire marks a lease expired, so the next run takes over at once.
func (o *Orchestrator) expire(ctx context.Context, key string, until func(time.Time) lease, log *slog.Logger) {
	if err := storage.WriteJSON(ctx, o.bucket, key, until(time.Unix(0, 0))); err != nil {
		log.Warn("release lease", "key", key, "error", err)
	}
}

// leaseGens lists the job's lease generations in ascending order.
func (o *Orchestrator) leaseGens(ctx context.Context, id string) ([]int, error) {
	keys, err := storage.List(ctx, o.bucket, job.LeasePrefix(id))
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

func (o *Orchestrator) newerLease(ctx context.Context, id string, gen int) (bool, error) {
	gens, err := o.leaseGens(ctx, id)
	if err != nil {
		return false, err
	}
	return len(gens) > 0 && gens[len(gens)-1] > gen, nil
}
