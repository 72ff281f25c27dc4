package schedule

import (
	"errors"

	"github.com/sre-tools/deployer/manifest"
)

var (
	// ErrBadSpec is returned when a cron spec does not parse (including a
	// malformed CRON_TZ=/TZ= prefix, which panics inside robfig/cron and is
	// recovered) or never fires.
	ErrBadSpec = manifest.ErrBadCron
	// ErrBadTimeZone is returned when a schedule's tz attribute or its
	// spec's CRON_TZ=/TZ= prefix names no known time zone, or when both are
	// given and disagree.
	ErrBadTimeZone = manifest.ErrBadTimeZone
	// ErrDuplicateName is returned by Set when two schedules of one repo
	// share a name.
	ErrDuplicateName = errors.New("duplicate schedule name")
)
