package api

import (
	"net/http"
	"slices"
)

// certName reports whether a verified client certificate names one of
// names, as its subject CN or a DNS SAN.
func certName(r *http.Request, names []string) (string, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 || len(names) == 0 {
		return "", false
	}
	leaf := r.TLS.VerifiedChains[0][0]
	for _, n := range append([]string{leaf.Subject.CommonName}, leaf.DNSNames...) {
		if n != "" && slices.Contains(names, n) {
			return n, true
		}
	}
	return "", false
}
