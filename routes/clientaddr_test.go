package routes

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

// The per-client address believes X-Forwarded-For only as far as trusted
// proxies wrote it: a client that reaches the app directly, or puts
// addresses of its choosing in the header, is counted by its own.
func TestClientAddrReadsForwardedOnlyFromTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("fd00::/8")}
	cases := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies trusted: the peer, whatever the header says", nil, "10.1.2.3:5000", []string{"203.0.113.9"}, "10.1.2.3"},
		{"an untrusted peer cannot name itself", trusted, "198.51.100.7:5000", []string{"203.0.113.9"}, "198.51.100.7"},
		{"a trusted proxy: the address it saw", trusted, "10.1.2.3:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"what the client wrote left of it is never read", trusted, "10.1.2.3:5000", []string{"1.1.1.1, 2.2.2.2, 203.0.113.9"}, "203.0.113.9"},
		{"two trusted proxies", trusted, "127.0.0.1:5000", []string{"6.6.6.6, 203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"header lines are one list", trusted, "10.1.2.3:5000", []string{"6.6.6.6, 203.0.113.9", "10.9.9.9"}, "203.0.113.9"},
		{"no header from a trusted proxy: the proxy", trusted, "10.1.2.3:5000", nil, "10.1.2.3"},
		{"garbage where the walk reaches: the last trusted hop", trusted, "10.1.2.3:5000", []string{"203.0.113.9, not-an-address"}, "10.1.2.3"},
		{"garbage beyond the client is not read", trusted, "10.1.2.3:5000", []string{"not-an-address, 203.0.113.9"}, "203.0.113.9"},
		{"every hop trusted: the farthest", trusted, "10.1.2.3:5000", []string{"10.4.4.4, 10.5.5.5"}, "10.4.4.4"},
		{"IPv6 behind a trusted proxy", trusted, "[fd00::1]:5000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"IPv4 in IPv6 form", trusted, "[::ffff:10.1.2.3]:5000", []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/callback", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientAddr(tc.trusted)(r); got != netip.MustParseAddr(tc.want) {
				t.Fatalf("%s, want %s", got, tc.want)
			}
		})
	}
}
