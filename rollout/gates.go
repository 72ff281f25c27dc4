package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sre-tools/deployer/api"
)

// Default Prometheus gate timings.
const (
	defaultGateTimeout = 5 * time.Minute
	defaultGateEvery   = 10 * time.Second
)

// gates passes the gates before wave wi, in order. It reports true when
// all passed; false when the rollout was paused, cancelled or stopped
// meanwhile (a failed gate stops it), for the driver to look again.
func (c *Coordinator) gates(ctx context.Context, id string, wi int, wake <-chan struct{}) (bool, error) {
	for {
		if ctx.Err() != nil {
			return false, nil
		}
		r, err := c.Get(id)
		if err != nil {
			return false, err
		}
		if r.Finished != nil || r.Cancel || r.Paused {
			return false, nil
		}
		w := r.Waves[wi]
		gi := -1
		for i, g := range w.Gates {
			if g.State != api.StepPassed {
				gi = i
				break
			}
		}
		if gi < 0 {
			return true, nil
		}
		wait, err := c.gate(ctx, r, wi, gi)
		if err != nil {
			return false, err
		}
		if wait > 0 {
			c.sleep(ctx, wake, wait)
		}
	}
}

// gate looks at gate gi of wave wi once and records what it saw. It
// returns how long to wait before looking again (0: look at once).
func (c *Coordinator) gate(ctx context.Context, r api.Rollout, wi, gi int) (time.Duration, error) {
	now := c.opts.Now()
	g := r.Waves[wi].Gates[gi]
	if g.Started == nil {
		_, err := c.update(r.ID, func(r *api.Rollout) error {
			g := &r.Waves[wi].Gates[gi]
			if g.Started == nil {
				g.Started, g.State = &now, api.StepWaiting
				c.event(r, "gate %s before wave %d: waiting", g.Kind, r.Waves[wi].Index)
			}
			return nil
		})
		return 0, err
	}
	var (
		state, evidence string
		wait            time.Duration
		samples         *api.GateSamples
	)
	switch g.Kind {
	case api.GateBake:
		bake, _ := duration("bake", r.Request.Bake, 0)
		paused := time.Duration(g.PausedMS) * time.Millisecond
		until := g.Started.Add(bake + paused) // its clock stopped while paused
		if now.Before(until) {
			return until.Sub(now), nil
		}
		pausedText := ""
		if paused > 0 {
			shown := paused.Round(time.Second)
			if paused < time.Second {
				shown = paused.Round(10 * time.Millisecond)
			}
			pausedText = fmt.Sprintf(" (paused %s)", shown)
		}
		state, evidence = api.StepPassed, fmt.Sprintf("baked %s%s: from %s to %s; %d host(s) failed so far", bake, pausedText, g.Started.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), r.Failed)
	case api.GateApprove:
		if g.Approved == "" {
			return pollOf(r) * 5, nil
		}
		evidence = fmt.Sprintf("approved by %s", g.Approved)
		if strings.HasPrefix(g.Evidence, evidence+" (before the gate ran)") {
			evidence = g.Evidence
		}
		state = api.StepPassed
	case api.GatePrometheus:
		p := *r.Request.Prometheus
		timeout, _ := duration("gate timeout", p.Timeout, defaultGateTimeout)
		every, _ := duration("gate interval", p.Every, defaultGateEvery)
		every = max(every, minGateEvery)
		v, err := c.query(ctx, p)
		ok := err == nil && inBounds(v, p)
		seen := ""
		if err != nil {
			seen = "query failed: " + err.Error()
		} else {
			seen = fmt.Sprintf("%s = %s (%s)", p.Query, strconv.FormatFloat(v, 'g', -1, 64), bounds(p))
		}
		samples = sampled(g.Samples, v, err == nil, ok, p, now)
		evidence = fmt.Sprintf("%s at %s", cleanText(seen, maxSeen), now.UTC().Format(time.RFC3339))
		switch {
		case ok:
			state = api.StepPassed
		case now.Sub(*g.Started) >= timeout:
			state, evidence = api.StepFailed, evidence+fmt.Sprintf("; not in bounds within %s", timeout)
		default:
			state, wait = api.StepWaiting, every
		}
		evidence += samplesText(samples)
	case api.GateHTTP:
		p := *r.Request.HTTP
		timeout, _ := duration("gate timeout", p.Timeout, defaultGateTimeout)
		every, _ := duration("gate interval", p.Every, defaultGateEvery)
		every = max(every, minGateEvery)
		ok, seen := c.probe(ctx, r, wi, p)
		evidence = fmt.Sprintf("%s at %s", cleanText(seen, maxSeen), now.UTC().Format(time.RFC3339))
		switch {
		case ok:
			state = api.StepPassed
		case now.Sub(*g.Started) >= timeout:
			state, evidence = api.StepFailed, evidence+fmt.Sprintf("; not every host answered 2xx within %s", timeout)
		default:
			state, wait = api.StepWaiting, every
		}
	default:
		state, evidence = api.StepFailed, "unknown gate kind "+g.Kind
	}
	evidence = cleanText(evidence, maxEvidence)
	_, err := c.update(r.ID, func(r *api.Rollout) error {
		w := &r.Waves[wi]
		g := &w.Gates[gi]
		if r.Finished != nil || w.State != api.StepPending {
			return nil
		}
		g.Evidence = evidence
		if samples != nil {
			g.Samples = samples
		}
		if state == api.StepWaiting {
			return nil
		}
		g.State, g.Ended = state, &now
		// the evidence is stored once, on the gate; the log and the
		// stop reason carry its beginning
		short := cleanText(evidence, maxEvidenceEcho)
		c.event(r, "gate %s before wave %d %s: %s", g.Kind, w.Index, state, short)
		if state == api.StepFailed {
			c.stop(r, api.RolloutFailed, fmt.Sprintf("gate %s before wave %d failed: %s", g.Kind, w.Index, short))
		}
		return nil
	})
	return wait, err
}

// sampled adds a poll of a Prometheus gate to its samples: its value v
// (when the query answered), out of bounds unless ok.
func sampled(prev *api.GateSamples, v float64, answered, ok bool, p api.PrometheusGate, now time.Time) *api.GateSamples {
	s := api.GateSamples{}
	if prev != nil {
		s = *prev
	}
	s.Polls++
	if ok {
		return &s
	}
	s.OutOfBand++
	if !answered || math.IsNaN(v) || math.IsInf(v, 0) {
		return &s
	}
	if s.First == nil {
		s.First, s.FirstAt = &v, &now
	}
	if s.Worst == nil || outBy(v, p) > outBy(*s.Worst, p) {
		s.Worst, s.WorstAt = &v, &now
	}
	return &s
}

// outBy is how far v is out of p's bounds.
func outBy(v float64, p api.PrometheusGate) float64 {
	switch {
	case p.Max != nil && v > *p.Max:
		return v - *p.Max
	case p.Min != nil && v < *p.Min:
		return *p.Min - v
	}
	return 0
}

// samplesText is what a gate's evidence says of its polls that were out
// of bounds ("" when none was): how many of how many, the first value
// and the worst, with their times.
func samplesText(s *api.GateSamples) string {
	if s == nil || s.OutOfBand == 0 {
		return ""
	}
	t := fmt.Sprintf("; %d of %d poll(s) out of bounds", s.OutOfBand, s.Polls)
	if s.First != nil {
		t += fmt.Sprintf(", first %s at %s, worst %s at %s", strconv.FormatFloat(*s.First, 'g', -1, 64), s.FirstAt.UTC().Format(time.RFC3339),
			strconv.FormatFloat(*s.Worst, 'g', -1, 64), s.WorstAt.UTC().Format(time.RFC3339))
	}
	return t
}

func inBounds(v float64, p api.PrometheusGate) bool {
	return (p.Min == nil || v >= *p.Min) && (p.Max == nil || v <= *p.Max)
}

func bounds(p api.PrometheusGate) string {
	var parts []string
	if p.Min != nil {
		parts = append(parts, "min "+strconv.FormatFloat(*p.Min, 'g', -1, 64))
	}
	if p.Max != nil {
		parts = append(parts, "max "+strconv.FormatFloat(*p.Max, 'g', -1, 64))
	}
	return strings.Join(parts, ", ")
}

// query runs p's instant query and returns its value: the one sample of a
// scalar or a vector (the largest of several samples).
func (c *Coordinator) query(ctx context.Context, p api.PrometheusGate) (float64, error) {
	u := strings.TrimSuffix(p.URL, "/") + "/api/v1/query?" + url.Values{"query": {p.Query}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.opts.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, err
	}
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return 0, fmt.Errorf("HTTP %d: not a Prometheus answer: %v", resp.StatusCode, err)
	}
	if ans.Status != "success" {
		return 0, fmt.Errorf("HTTP %d: %s", resp.StatusCode, ans.Error)
	}
	var samples [][2]any
	switch ans.Data.ResultType {
	case "scalar":
		var s [2]any
		if err := json.Unmarshal(ans.Data.Result, &s); err != nil {
			return 0, err
		}
		samples = append(samples, s)
	case "vector":
		var vs []struct {
			Value [2]any `json:"value"`
		}
		if err := json.Unmarshal(ans.Data.Result, &vs); err != nil {
			return 0, err
		}
		for _, v := range vs {
			samples = append(samples, v.Value)
		}
	default:
		return 0, fmt.Errorf("result type %q: want a scalar or a vector", ans.Data.ResultType)
	}
	if len(samples) == 0 {
		return 0, fmt.Errorf("the query returned no sample")
	}
	best := 0.0
	for i, s := range samples {
		str, ok := s[1].(string)
		if !ok {
			return 0, fmt.Errorf("sample value %v: want a string", s[1])
		}
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return 0, fmt.Errorf("sample value %q: %v", str, err)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, fmt.Errorf("sample value %q is not a finite number: a NaN or infinite sample fails the gate", str)
		}
		if i == 0 || v > best {
			best = v
		}
	}
	return best, nil
}

// probe GETs p's URL for every host of the waves before wave wi that
// succeeded; ok when every one answered 2xx. seen says what each answered.
func (c *Coordinator) probe(ctx context.Context, r api.Rollout, wi int, p api.HTTPGate) (ok bool, seen string) {
	before := r.Waves[wi].Index
	var parts []string
	ok = true
	n := 0
	for _, h := range r.Hosts {
		if h.Wave >= before || h.State != "succeeded" {
			continue
		}
		n++
		var req *http.Request
		u, err := gateURL(p.URL, h.Host.Name, h.Host.Datacenter)
		if err == nil {
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		}
		var status string
		if err == nil {
			var resp *http.Response
			if resp, err = c.opts.HTTP.Do(req); err == nil {
				head, _ := io.ReadAll(io.LimitReader(resp.Body, maxGateBody+1))
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
				resp.Body.Close()
				status = resp.Status + bodyEvidence(head)
				if resp.StatusCode/100 != 2 {
					ok = false
				}
			}
		}
		if err != nil {
			ok, status = false, err.Error()
		}
		parts = append(parts, fmt.Sprintf("%s: %s", h.Host.Name, status))
	}
	if n == 0 {
		return true, "no host deployed so far to probe"
	}
	return ok, "GET " + redact(p.URL) + ": " + strings.Join(parts, ", ")
}

// maxGateBody bounds what the evidence of an HTTP gate keeps of each
// host's answer.
const maxGateBody = 512

// bodyEvidence is the beginning of a health URL's answer for the gate's
// evidence: its first maxGateBody bytes on one line, cleaned (control and
// bidirectional characters replaced), quoted; "" for an empty body.
func bodyEvidence(b []byte) string {
	more := len(b) > maxGateBody
	if more {
		b = b[:maxGateBody]
	}
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	s = cleanText(s, maxGateBody)
	if s == "" {
		return ""
	}
	if more {
		s += " …"
	}
	return " " + strconv.Quote(s)
}
