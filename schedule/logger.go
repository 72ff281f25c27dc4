package schedule

import (
	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"
)

// cronLogger adapts zerolog to cron.Logger. cron's routine messages (wake,
// run, added) go to debug; errors (recovered panics) to error.
type cronLogger struct{ l zerolog.Logger }

var _ cron.Logger = cronLogger{}

func (c cronLogger) Info(msg string, kv ...any) {
	c.l.Debug().Fields(kv).Msg("cron: " + msg)
}

func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error().Err(err).Fields(kv).Msg("cron: " + msg)
}
