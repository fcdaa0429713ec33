package job

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// MaxWebhookURL bounds a spec's webhook URL.
const MaxWebhookURL = 2048

// CheckWebhookURL checks a webhook URL as written: https (or http to a
// loopback address, for a receiver on the same machine), a host, no user
// or password, not a name of a metadata service. Where the name leads is
// checked when the webhook is sent (pkg/webhook).
func CheckWebhookURL(raw string) error {
	if len(raw) > MaxWebhookURL {
		return fmt.Errorf("is longer than %d bytes", MaxWebhookURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("is not a URL")
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	switch {
	// Messages name the scheme and host only: the path or query may hold
	// the receiver's token.
	case u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(host)):
		return fmt.Errorf("%s://%s…: expected an https:// URL (http:// only to a loopback address)", u.Scheme, u.Host)
	case host == "":
		return fmt.Errorf("has no host")
	case u.User != nil:
		return fmt.Errorf("must not carry a user or password (put a token in the path or query)")
	case host == "metadata" || host == "metadata.google.internal" || strings.HasSuffix(host, ".internal"):
		return fmt.Errorf("%s names an internal host", u.Host)
	}
	return nil
}

func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
