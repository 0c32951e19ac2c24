package routes

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr returns a function that says which address a request comes
// from, for what is kept per client (the budget of refused logins). It is
// the direct peer's address, unless that peer is one of trusted (a proxy or
// load balancer in front of the app): then it is the nearest address in
// X-Forwarded-For that is not itself a trusted proxy. Each proxy appends
// the address it received the request from, so the entries from the right
// up to that one were written by trusted hands; what lies left of it is
// whatever the client sent, and is never read. A peer outside trusted
// cannot choose its address with the header at all.
//
// An entry that does not parse where the walk reaches it leaves the last
// trusted hop's address: the request is counted against that proxy, never
// against an address the client named.
func ClientAddr(trusted []netip.Prefix) func(*http.Request) netip.Addr {
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) netip.Addr {
		addr := peerAddr(r)
		if len(trusted) == 0 || !isTrusted(addr) {
			return addr
		}
		hops := r.Header.Values("X-Forwarded-For")
		for i := len(hops) - 1; i >= 0; i-- {
			line := hops[i]
			for line != "" {
				var entry string
				if j := strings.LastIndexByte(line, ','); j >= 0 {
					line, entry = line[:j], line[j+1:]
				} else {
					line, entry = "", line
				}
				a, err := netip.ParseAddr(strings.TrimSpace(entry))
				if err != nil {
					return addr
				}
				addr = a.Unmap()
				if !isTrusted(addr) {
					return addr
				}
			}
		}
		return addr // every hop a trusted proxy: the farthest one is the client
	}
}

// peerAddr is the address of the direct peer, from the request's
// RemoteAddr ("ip:port", as net/http sets it); the zero Addr when it has
// none that parses.
func peerAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}
