// Package schedule provides the daemon's cron: it runs the schedules of each
// repository's manifest on robfig/cron v3, reloads them when a manifest
// changes, and works out which activations were missed while the daemon was
// down.
//
// Specs are standard five-field cron specs or descriptors (@daily,
// @every 1h), optionally prefixed with CRON_TZ=zone; a schedule's tz names
// its zone, else Options.Location. Specs are parsed under recover, because
// robfig/cron panics on a malformed CRON_TZ= prefix. An @every interval
// below one second (zero and negative ones included) is refused: robfig/cron
// would round it up and fire every second.
//
// # Daylight saving
//
// A schedule that does not fire in every hour names wall-clock times, and
// follows the ISC cron rule for them:
//   - when the clocks jump forward over one of its times (02:30 on the day
//     Europe/Berlin goes from 02:00 to 03:00), it fires once at the jump
//     (03:00 local) instead of being skipped for the day, as robfig/cron
//     alone would do;
//   - when the clocks go back and one of its times happens twice (02:30 on
//     the day Europe/Berlin goes from 03:00 back to 02:00), it fires only at
//     the first (02:30 summer time), where robfig/cron alone fires twice.
//
// Schedules that fire every hour (*/15 * * * *, 30 * * * *) and @every
// schedules follow elapsed time: nothing extra at a jump forward, both
// 02:30s when the clocks go back.
//
// # Caveats
//
// Options.Fire runs on a cron job goroutine and must only enqueue: the
// Scheduler never calls it concurrently for one (repo, schedule); an
// activation due while the previous call still runs is skipped and logged;
// and Stop's context waits for running calls. A panic in Fire is recovered
// and logged, and the activation is not recorded as fired. The cron chain
// is SkipIfStillRunning(Recover(job)): with Recover outermost, a panic
// unwinds past SkipIfStillRunning before it returns its token, and every
// later activation of that entry is skipped (robfig/cron v3.0.1).
//
// The live cron runs on the real clock; Options.Now only drives Entries.
// All time arithmetic (live entries, Entries, Missed) goes through one Next
// function, which is what the tests check with fixed times.
//
// Missed marks what it reports as handled (SetLastFired) before the daemon
// has run or recorded it, so a crash in between loses that report. A fire
// is recorded after Fire returns, so a crash in between reports it as
// missed on the next start.
package schedule
