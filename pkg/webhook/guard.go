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
		return fmt.Errorf("webhook URL %s is not a public address", Redact(raw))
	}
	return nil
}

// denied are the ranges a webhook may not reach beyond what netip's
// predicates catch: this network, shared and benchmark space, IETF and
// reserved blocks (Oracle's metadata answers at 192.0.0.192), and IPv6
// forms that carry an IPv4 address (NAT64, IPv4-compatible, 6to4) or are
// site-local.
var denied = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("::/96"),
	netip.MustParsePrefix("2002::/16"),
	netip.MustParsePrefix("fec0::/10"),
}

// Public reports whether ip is an address a webhook may go to: not
// loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local
// (169.254/16, where cloud metadata services answer, fe80::/10),
// unspecified, multicast, or in denied.
func Public(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range denied {
		if p.Contains(ip) {
			return false
		}
	}
	return true
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
