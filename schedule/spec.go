package schedule

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// parser accepts standard five-field specs and descriptors (@daily,
// @every 1h), like cron.ParseStandard.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// allHours is the Hour bit set of a schedule that fires in every hour.
const allHours = 1<<24 - 1

// spec is a parsed schedule in a fixed location. Its Next applies the
// package's daylight-saving policy (see the package documentation) on top
// of robfig/cron's arithmetic; the live cron entries, Missed and Entries
// all use it.
type spec struct {
	sched cron.Schedule
	loc   *time.Location
	// wallClock is true for a *cron.SpecSchedule that does not fire every
	// hour: it names wall-clock times, so a skipped one fires at the jump
	// and a repeated one fires once.
	wallClock bool
}

var _ cron.Schedule = (*spec)(nil)

// Validate reports whether a cron spec with an optional tz (an IANA zone
// name) is usable: it parses (a malformed CRON_TZ= prefix is an error, not a
// panic), its zone exists, and it fires at least once in the next five
// years.
func Validate(cronSpec, tz string) error {
	_, err := parse(cronSpec, tz, time.UTC)
	return err
}

// parse parses cronSpec under recover. tz, else the spec's own CRON_TZ=
// prefix, else def is the schedule's location.
func parse(cronSpec, tz string, def *time.Location) (sp *spec, err error) {
	defer func() {
		if r := recover(); r != nil {
			sp, err = nil, fmt.Errorf("parse %q: %w: %v", cronSpec, ErrBadSpec, r)
		}
	}()
	full, err := withZone(strings.TrimSpace(cronSpec), tz)
	if err != nil {
		return nil, err
	}
	if err := checkEvery(full); err != nil {
		return nil, fmt.Errorf("parse %q: %w: %v", cronSpec, ErrBadSpec, err)
	}
	sched, err := parser.Parse(full)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w: %v", cronSpec, ErrBadSpec, err)
	}
	sp = &spec{sched: sched, loc: def}
	if ss, ok := sched.(*cron.SpecSchedule); ok {
		if hasZonePrefix(full) {
			sp.loc = ss.Location
		}
		cp := *ss
		cp.Location = sp.loc
		sp.sched = &cp
		sp.wallClock = ss.Hour&allHours != allHours
	}
	if sp.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("parse %q: %w: never fires", cronSpec, ErrBadSpec)
	}
	return sp, nil
}

// checkEvery refuses an "@every D" whose D is below one second:
// robfig/cron rounds any smaller interval, zero and negative ones included,
// up to one second, so "@every -5s" would fire every second.
func checkEvery(full string) error {
	s := full
	if hasZonePrefix(s) {
		_, s, _ = strings.Cut(s, " ")
	}
	arg, ok := strings.CutPrefix(strings.TrimSpace(s), "@every ")
	if !ok {
		return nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(arg))
	if err != nil {
		return nil // the parser names the problem
	}
	if d <= 0 {
		return fmt.Errorf("@every %s is not a positive interval (write e.g. @every 30s)", strings.TrimSpace(arg))
	}
	if d < time.Second {
		return fmt.Errorf("@every %s is below one second, the smallest interval cron keeps (write e.g. @every 1s)", strings.TrimSpace(arg))
	}
	return nil
}

func hasZonePrefix(s string) bool {
	return strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=")
}

// withZone prefixes the spec with CRON_TZ=tz. A spec with its own prefix
// keeps it; tz must then be empty or name the same zone.
func withZone(s, tz string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("parse: %w: empty spec", ErrBadSpec)
	}
	if tz != "" {
		if _, err := time.LoadLocation(tz); err != nil {
			return "", fmt.Errorf("load time zone %q: %w: %v", tz, ErrBadTimeZone, err)
		}
	}
	if !hasZonePrefix(s) {
		if tz == "" {
			return s, nil
		}
		return "CRON_TZ=" + tz + " " + s, nil
	}
	zone, _, ok := strings.Cut(s[strings.Index(s, "=")+1:], " ")
	if !ok {
		return "", fmt.Errorf("parse %q: %w: nothing after the time zone", s, ErrBadSpec)
	}
	if _, err := time.LoadLocation(zone); err != nil {
		return "", fmt.Errorf("load time zone %q: %w: %v", zone, ErrBadTimeZone, err)
	}
	if tz != "" && tz != zone {
		return "", fmt.Errorf("parse %q: %w: tz %q disagrees with the spec's %q", s, ErrBadTimeZone, tz, zone)
	}
	return s, nil
}

// Next returns the first activation strictly after t, in the schedule's
// location, or the zero time if there is none within five years.
func (sp *spec) Next(t time.Time) time.Time {
	c := sp.sched.Next(t)
	if c.IsZero() || !sp.wallClock {
		return c.In(sp.loc)
	}
	c = c.In(sp.loc)
	for n := 0; repeated(c) && n < 100; n++ {
		c = sp.sched.Next(c).In(sp.loc)
		if c.IsZero() {
			return c
		}
	}
	if jump, ok := sp.skippedBefore(t, c); ok {
		return jump
	}
	return c
}

// repeated reports whether c's wall-clock reading already happened, because
// the clocks went back less than that long before c.
func repeated(c time.Time) bool {
	start, _ := c.ZoneBounds()
	if start.IsZero() {
		return false
	}
	_, before := start.Add(-time.Nanosecond).Zone()
	_, now := c.Zone()
	return before > now && c.Sub(start) < time.Duration(before-now)*time.Second
}

// skippedBefore returns the first clock jump forward in (after, c) whose
// skipped wall-clock times include an activation.
func (sp *spec) skippedBefore(after, c time.Time) (time.Time, bool) {
	ss := sp.sched.(*cron.SpecSchedule)
	t := after.In(sp.loc)
	for {
		_, end := t.ZoneBounds()
		if end.IsZero() || !end.Before(c) {
			return time.Time{}, false
		}
		_, old := end.Add(-time.Nanosecond).Zone()
		_, cur := end.Zone()
		if cur > old {
			cp := *ss
			cp.Location = time.FixedZone("", old)
			n := cp.Next(end.Add(-time.Second))
			if !n.IsZero() && n.Before(end.Add(time.Duration(cur-old)*time.Second)) {
				return end, true
			}
		}
		t = end
	}
}
