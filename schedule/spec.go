package schedule

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/sre-tools/deployer/manifest"
)

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
// name) is usable: manifest.ParseCron, the one check of a cron spec.
func Validate(cronSpec, tz string) error {
	_, err := parse(cronSpec, tz, time.UTC)
	return err
}

// parse parses cronSpec with manifest.ParseCron. tz, else the spec's own
// CRON_TZ= prefix, else def is the schedule's location.
func parse(cronSpec, tz string, def *time.Location) (*spec, error) {
	sched, zoned, err := manifest.ParseCron(cronSpec, tz)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", cronSpec, err)
	}
	sp := &spec{sched: sched, loc: def}
	if ss, ok := sched.(*cron.SpecSchedule); ok {
		if zoned {
			sp.loc = ss.Location
		}
		cp := *ss
		cp.Location = sp.loc
		sp.sched = &cp
		sp.wallClock = ss.Hour&allHours != allHours
	}
	return sp, nil
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
