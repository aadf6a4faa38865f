package delivery_test

import (
	"errors"
	"net"
	"testing"

	"github.com/hermodhq/hermod/shared/delivery"
)

// family is the network the dialler names for ip ("tcp4" or "tcp6").
func family(ip string) string {
	if net.ParseIP(ip).To4() != nil {
		return "tcp4"
	}
	return "tcp6"
}

// The SSRF guard at the dialler's control, called with literal addresses
// and never dialling: every non-public range is refused in every form an
// address can take (IPv4, IPv6, IPv4-mapped IPv6, NAT64), on both
// networks (and "tcp", which the dialler never names); public addresses
// pass; an allow-list opens exactly its
// prefixes. (Redirects are never followed and names are checked after DNS:
// TestSendRedirectsNotFollowed and TestSendSSRFGuardTable.)
func TestDialGuardRanges(t *testing.T) {
	guard := delivery.DialGuard(nil)
	blocked := []string{
		"0.0.0.0", "0.1.2.3", // this network
		"10.0.0.1", "10.255.255.255", // private
		"100.64.0.1", "100.127.255.254", // shared address space (CGNAT)
		"127.0.0.1", "127.255.255.254", // loopback
		"169.254.0.1", "169.254.169.254", // link-local, cloud metadata
		"172.16.0.1", "172.31.255.254", // private
		"192.0.0.1",                  // IETF protocol assignments
		"192.0.2.1",                  // documentation
		"192.88.99.1",                // 6to4 relay anycast
		"192.168.0.1", "192.168.1.1", // private
		"198.18.0.1", "198.19.255.254", // benchmarking
		"198.51.100.1", "203.0.113.1", // documentation
		"224.0.0.1", "239.255.255.250", // multicast
		"240.0.0.1", "255.255.255.255", // reserved, broadcast
		"::", "::1", // unspecified, loopback
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", // IPv4-mapped
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", // NAT64 of loopback and metadata
		"fc00::1", "fd12:3456::1", // unique local
		"fe80::1",     // link-local
		"ff02::1",     // multicast
		"2001:db8::1", // documentation
		"100::1",      // discard-only
	}
	for _, ip := range blocked {
		for _, network := range []string{"tcp4", "tcp6", "tcp"} {
			if err := guard(network, net.JoinHostPort(ip, "443")); !errors.Is(err, delivery.ErrRefusedDestination) {
				t.Errorf("%s %s: %v, want refused", network, ip, err)
			}
		}
	}
	for _, ip := range []string{"1.1.1.1", "8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "2a00:1450:4001::200e"} {
		if err := guard(family(ip), net.JoinHostPort(ip, "443")); err != nil {
			t.Errorf("public %s refused: %v", ip, err)
		}
	}
	// Any port: the guard looks at the address only.
	for _, port := range []string{"80", "6379", "4222", "65535"} {
		if err := guard("tcp4", net.JoinHostPort("127.0.0.1", port)); err == nil {
			t.Errorf("loopback port %s let through", port)
		}
	}
	open := delivery.DialGuard(allow("127.0.0.0/8", "fd00::/8"))
	for addr, want := range map[string]bool{
		"127.0.0.1": true, "127.1.2.3": true, "fd12::1": true,
		"10.0.0.1": false, "::1": false, "169.254.169.254": false, "fe80::1": false,
	} {
		if err := open(family(addr), net.JoinHostPort(addr, "80")); (err == nil) != want {
			t.Errorf("allow 127.0.0.0/8, fd00::/8: %s: %v, want allowed %v", addr, err, want)
		}
	}
}
