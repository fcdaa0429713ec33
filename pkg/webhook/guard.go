package webhook

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"

	"github.com/helios-project/infrastructure/pkg/job"
)

// CheckURL checks a webhook URL before anything is resolved: as a spec's
// (job.CheckWebhookURL), and, if its host is an address, a public one
// unless allowPrivate.
func CheckURL(raw string, allowPrivate bool) error {
	if err := job.CheckWebhookURL(raw); err != nil {
		return fmt.Errorf("webhook URL %w", err)
	}
	u, _ := url.Parse(raw)
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !allowPrivate && !Public(ip) {
		return fmt.Errorf("webhook URL %q is not a public address", raw)
	}
	return nil
}

// cgnat is 100.64.0.0/10, shared address space behind carrier NAT.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Public reports whether ip is an address a webhook may go to: not
// loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10),
// link-local (169.254/16, where cloud metadata services answer, fe80::/10),
// unspecified or multicast.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsValid() && !ip.IsLoopback() && !ip.IsPrivate() && !ip.IsLinkLocalUnicast() && !ip.IsLinkLocalMulticast() &&
		!ip.IsInterfaceLocalMulticast() && !ip.IsMulticast() && !ip.IsUnspecified() && !cgnat.Contains(ip)
}

// refusedError is a connection the guard stopped: not worth retrying.
type refusedError struct{ addr string }

func (e *refusedError) Error() string {
	return fmt.Sprintf("webhook: refusing to connect to %s: not a public address", e.addr)
}

// guard checks each address the dialer is about to connect to, after DNS:
// a name that resolves (or is rebound) to an internal address is refused.
func guard(allowPrivate bool) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		if allowPrivate {
			return nil
		}
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !Public(ip) {
			return &refusedError{addr: address}
		}
		return nil
	}
}
