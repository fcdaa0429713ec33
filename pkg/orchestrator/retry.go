package orchestrator

import (
	"github.com/cenkalti/backoff/v5"

	"github.com/helios-project/infrastructure/pkg/job"
)

// backoffFor is the pause between attempts a spec's retry policy asks for:
// exponential from initialBackoff, doubling up to maxBackoff, with ±50%
// jitter so that chunks failing together do not retry together.
func backoffFor(p job.RetryPolicy) backoff.BackOff {
	return &backoff.ExponentialBackOff{
		InitialInterval:     p.InitialBackoff.Duration,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         p.MaxBackoff.Duration,
	}
}
