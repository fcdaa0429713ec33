// Package netguard keeps outgoing connections on the public internet: a
// URL, a webhook or a page's font may name any host, and a name may
// resolve, or be rebound, to the machine's own services or the cloud's
// metadata endpoint. The dialer checks each address as it connects, after
// DNS.
package netguard

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// denied are the ranges refused beyond what netip's predicates catch: this
// network, shared and benchmark space, IETF and reserved blocks (Oracle's
// metadata answers at 192.0.0.192), and IPv6 forms that carry an IPv4
// address (NAT64, IPv4-compatible, 6to4) or are site-local.
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

// Public reports whether ip is on the public internet: not loopback,
// private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16,
// where cloud metadata services answer, fe80::/10), unspecified,
// multicast, or in denied.
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

// RefusedError is a connection the guard stopped: not worth retrying.
type RefusedError struct{ Addr string }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refusing to connect to %s: not a public address", e.Addr)
}

// Dialer connects only to public addresses, unless allowPrivate (tests, a
// receiver on the same machine).
func Dialer(timeout time.Duration, allowPrivate bool) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: func(network, address string, _ syscall.RawConn) error {
		if allowPrivate {
			return nil
		}
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || !Public(ip) {
			return &RefusedError{Addr: address}
		}
		return nil
	}}
}
