package webhook

import (
	"fmt"
	"net/netip"
	"net/url"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/netguard"
)

// CheckURL checks a webhook URL before anything is resolved: as a spec's
// (job.CheckWebhookURL), and, if its host is an address, a public one
// unless allowPrivate.
func CheckURL(raw string, allowPrivate bool) error {
	if err := job.CheckWebhookURL(raw); err != nil {
		return fmt.Errorf("webhook URL %w", err)
	}
	u, _ := url.Parse(raw)
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !allowPrivate && !netguard.Public(ip) {
		return fmt.Errorf("webhook URL %s is not a public address", Redact(raw))
	}
	return nil
}
