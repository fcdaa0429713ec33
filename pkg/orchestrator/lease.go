package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// ErrAlreadyRunning means another orchestrator holds the job's lease: a
// duplicate trigger, or a second `helios job run` of the same job.
var ErrAlreadyRunning = errors.New("job is already being run by another orchestrator")

// ErrLeaseLost means the run stopped because another orchestrator took the
// job over (this one stalled past its lease); the job, and its status, are
// the other's now.
var ErrLeaseLost = errors.New("lease lost to another orchestrator")

// lease is the content of renders/<id>/lease.<gen>.
type lease struct {
	Owner     string    `json:"owner"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// heldLease is the lease of a running orchestrator.
type heldLease struct {
	gen     int
	key     string
	release func()
}

// acquireLease takes the job's next lease generation. Leases are
// generations, each created if not exists, so taking over an expired lease
// needs no conditional delete: of two orchestrators that both see
// generation n expired, exactly one creates n+1. The run's context is
// cancelled (cause ErrLeaseLost) if a higher generation appears or the lease
// cannot be renewed for half its life. release stops the renewals and
// removes the job's leases.
func (o *Orchestrator) acquireLease(ctx context.Context, id string, lost context.CancelCauseFunc, log *slog.Logger) (*heldLease, error) {
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano())
	fresh := func() lease { return lease{Owner: owner, ExpiresAt: time.Now().Add(o.cfg.LeaseTTL).UTC()} }

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
		if err == nil && time.Now().Before(held.ExpiresAt) {
			return nil, fmt.Errorf("job %q: %w (lease held by %s until %s)", id, ErrAlreadyRunning, held.Owner, held.ExpiresAt.Format(time.RFC3339))
		}
		log.Warn("taking over an expired lease", "holder", held.Owner, "expiredAt", held.ExpiresAt)
	}
	gen := current + 1
	key := job.LeaseKey(id, gen)
	err = storage.CreateJSON(ctx, o.bucket, key, fresh())
	if errors.Is(err, storage.ErrExists) {
		return nil, fmt.Errorf("job %q: %w (lease generation %d taken first by another)", id, ErrAlreadyRunning, gen)
	}
	if err != nil {
		return nil, err
	}
	// A contender that listed long ago may have created a stale generation
	// after a newer one: the highest generation is the holder.
	if newer, err := o.newerLease(ctx, id, gen); err != nil || newer {
		_ = o.bucket.Delete(context.WithoutCancel(ctx), key)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("job %q: %w (a newer lease generation exists)", id, ErrAlreadyRunning)
	}

	lastRenewed := time.Now()
	stop := every(context.WithoutCancel(ctx), o.cfg.LeaseTTL/3, func(ctx context.Context) bool {
		if newer, err := o.newerLease(ctx, id, gen); err == nil && newer {
			log.Error("another orchestrator took over the job; stopping", "generation", gen)
			lost(ErrLeaseLost)
			return false
		}
		if err := storage.WriteJSON(ctx, o.bucket, key, fresh()); err != nil {
			if ctx.Err() != nil {
				return false
			}
			log.Warn("renew lease", "error", err)
			if time.Since(lastRenewed) > o.cfg.LeaseTTL/2 {
				log.Error("lease not renewed for half its life; stopping", "generation", gen)
				lost(ErrLeaseLost)
				return false
			}
			return true
		}
		lastRenewed = time.Now()
		return true
	})
	return &heldLease{gen: gen, key: key, release: func() {
		stop()
		ctx := context.WithoutCancel(ctx)
		if newer, err := o.newerLease(ctx, id, gen); err != nil || newer {
			return // the job is someone else's now
		}
		gens, err := o.leaseGens(ctx, id)
		if err != nil {
			log.Warn("release lease", "error", err)
			return
		}
		keys := make([]string, len(gens))
		for i, g := range gens {
			keys[i] = job.LeaseKey(id, g)
		}
		if err := storage.DeleteKeys(ctx, o.bucket, keys); err != nil {
			log.Warn("release lease", "error", err)
		}
	}}, nil
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
