package netguard_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/netguard"
)

func TestPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.216.34": true, "2606:2800:220:1::": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.0.1": false,
		"169.254.169.254": false, "100.64.0.1": false, "0.1.2.3": false, "192.0.0.192": false, "198.18.0.1": false,
		"240.0.0.1": false, "224.0.0.1": false, "fd00::1": false, "fe80::1": false, "::ffff:127.0.0.1": false,
		"64:ff9b::a00:1": false, "::10.0.0.1": false, "2002:a00:1::": false, "fec0::1": false,
	} {
		if got := netguard.Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}

// The dialer refuses a loopback address as it connects (after any name
// was resolved), unless private addresses are allowed.
func TestDialer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, err = netguard.Dialer(time.Second, false).DialContext(context.Background(), "tcp", l.Addr().String())
	var refused *netguard.RefusedError
	if !errors.As(err, &refused) {
		t.Errorf("dial loopback: %v, want a RefusedError", err)
	}
	c, err := netguard.Dialer(time.Second, true).DialContext(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		t.Errorf("dial loopback with private allowed: %v", err)
	} else {
		c.Close()
	}
}
