package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// ErrAlreadyRunning means another orchestrator holds the job's lease: a
// duplicate trigger, or a second `helios job run` of the same job.
var ErrAlreadyRunning = errors.New("job is already being run by another orchestrator")

// lease is the content of renders/<id>/lease.
type lease struct {
	Owner     string    `json:"owner"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// acquireLease creates the job's lease if not exists. A lease past its
// expiry (its holder crashed) is taken over. The returned release stops the
// renewals and deletes the lease.
func (o *Orchestrator) acquireLease(ctx context.Context, id string, log *slog.Logger) (release func(), err error) {
	key := job.LeaseKey(id)
	host, _ := os.Hostname()
	owner := fmt.Sprintf("%s/%d/%d", host, os.Getpid(), time.Now().UnixNano())
	fresh := func() lease { return lease{Owner: owner, ExpiresAt: time.Now().Add(o.cfg.LeaseTTL).UTC()} }
	for try := 0; ; try++ {
		err := storage.CreateJSON(ctx, o.bucket, key, fresh())
		if err == nil {
			break
		}
		if !errors.Is(err, storage.ErrExists) {
			return nil, err
		}
		var held lease
		if err := storage.ReadJSON(ctx, o.bucket, key, &held); err != nil && !storage.IsNotFound(err) {
			return nil, err
		}
		if try > 0 || time.Now().Before(held.ExpiresAt) {
			return nil, fmt.Errorf("job %q: %w (lease held by %s until %s)", id, ErrAlreadyRunning, held.Owner, held.ExpiresAt.Format(time.RFC3339))
		}
		log.Warn("taking over an expired lease", "holder", held.Owner, "expiredAt", held.ExpiresAt)
		if err := o.bucket.Delete(ctx, key); err != nil && !storage.IsNotFound(err) {
			return nil, err
		}
	}

	// Renewals outlive ctx: the lease is released (deleted) by release.
	stop := every(context.WithoutCancel(ctx), o.cfg.LeaseTTL/3, func(ctx context.Context) bool {
		if err := storage.WriteJSON(ctx, o.bucket, key, fresh()); err != nil && ctx.Err() == nil {
			log.Warn("renew lease", "error", err)
		}
		return true
	})
	return func() {
		stop()
		if err := deleteIfOwner(context.WithoutCancel(ctx), o.bucket, key, owner); err != nil {
			log.Warn("release lease", "error", err)
		}
	}, nil
}

func deleteIfOwner(ctx context.Context, b *blob.Bucket, key, owner string) error {
	var held lease
	if err := storage.ReadJSON(ctx, b, key, &held); err != nil {
		if storage.IsNotFound(err) {
			return nil
		}
		return err
	}
	if held.Owner != owner {
		return nil
	}
	if err := b.Delete(ctx, key); err != nil && !storage.IsNotFound(err) {
		return err
	}
	return nil
}
