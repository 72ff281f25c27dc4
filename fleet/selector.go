package fleet

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// Selector picks hosts by label, as --hosts 'env=prod,tier!=canary' does:
// every term must hold. A term is key=value, key!=value, key (the label is
// set) or !key (it is not). A value may be a glob (dc=fra*). The keys name
// and dc (or datacenter) mean the host's name and datacenter unless the
// host has a label of that name.
type Selector struct {
	text  string
	terms []selTerm
}

type selTerm struct {
	key, value string
	negate     bool // != or !key
	exists     bool // key or !key
}

// ParseSelector reads a --hosts selection; "" selects every host.
func ParseSelector(s string) (Selector, error) {
	sel := Selector{text: strings.TrimSpace(s)}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var t selTerm
		switch {
		case strings.Contains(part, "!="):
			t.key, t.value, _ = strings.Cut(part, "!=")
			t.negate = true
		case strings.Contains(part, "="):
			t.key, t.value, _ = strings.Cut(part, "=")
		case strings.HasPrefix(part, "!"):
			t.key, t.negate, t.exists = part[1:], true, true
		default:
			t.key, t.exists = part, true
		}
		t.key, t.value = strings.TrimSpace(t.key), strings.TrimSpace(t.value)
		if t.key == "" || strings.ContainsAny(t.key, "=! ") {
			return Selector{}, fmt.Errorf("%w: --hosts %q: term %q: want key=value, key!=value, key or !key, separated by commas", ErrInvalidOptions, s, part)
		}
		if _, err := path.Match(t.value, ""); err != nil {
			return Selector{}, fmt.Errorf("%w: --hosts %q: value %q: %v", ErrInvalidOptions, s, t.value, err)
		}
		sel.terms = append(sel.terms, t)
	}
	return sel, nil
}

// IsZero says whether the selector selects every host.
func (s Selector) IsZero() bool { return len(s.terms) == 0 }

func (s Selector) String() string { return s.text }

// value is what key means on h, and whether it is set.
func value(h Host, key string) (string, bool) {
	if v, ok := h.Labels[key]; ok {
		return v, true
	}
	switch key {
	case "name":
		return h.Name, true
	case "dc", "datacenter":
		return h.Datacenter, true
	}
	return "", false
}

// Match says whether h satisfies every term.
func (s Selector) Match(h Host) bool {
	for _, t := range s.terms {
		v, set := value(h, t.key)
		var ok bool
		if t.exists {
			ok = set
		} else {
			m, _ := path.Match(t.value, v)
			ok = set && m
		}
		if ok == t.negate {
			return false
		}
	}
	return true
}

// Select returns the hosts s matches, in their order; none is an error
// that lists the labels the hosts have.
func (s Selector) Select(hosts []Host) ([]Host, error) {
	if s.IsZero() {
		return hosts, nil
	}
	var out []Host
	for _, h := range hosts {
		if s.Match(h) {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: --hosts %q matches none of the %d host(s); their labels: %s", ErrInvalidOptions, s.text, len(hosts), labelSummary(hosts))
	}
	return out, nil
}

// labelSummary is "env=prod|staging, tier=canary|web", at most 20 keys.
func labelSummary(hosts []Host) string {
	vals := map[string][]string{}
	for _, h := range hosts {
		for k, v := range h.Labels {
			if !slices.Contains(vals[k], v) {
				vals[k] = append(vals[k], v)
			}
		}
	}
	if len(vals) == 0 {
		return "none (select by name= or dc=)"
	}
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for i, k := range keys {
		if i == 20 {
			parts = append(parts, "…")
			break
		}
		vs := vals[k]
		slices.Sort(vs)
		if len(vs) > 5 {
			vs = append(vs[:5:5], "…")
		}
		parts = append(parts, k+"="+strings.Join(vs, "|"))
	}
	return strings.Join(parts, ", ")
}
