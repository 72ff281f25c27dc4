package schedule_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/sre-tools/deployer/schedule"
)

func berlin(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("load Europe/Berlin: %v", err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// 2026: Europe/Berlin goes 02:00 CET -> 03:00 CEST on Sunday 29 March
// (01:00 UTC) and 03:00 CEST -> 02:00 CET on Sunday 25 October (01:00 UTC).
func TestNextDST(t *testing.T) {
	tests := []struct {
		name, spec, after string
		want              []string // successive activations, UTC
	}{
		{"spring forward: skipped 02:30 fires once at the jump, then daily",
			"30 2 * * *", "2026-03-28T02:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"}},
		{"spring forward: skipped 02:00 fires at the jump",
			"0 2 * * *", "2026-03-28T23:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"}},
		{"spring forward: weekday schedule does not fire on the Sunday",
			"30 2 * * 1-5", "2026-03-27T02:00:00Z",
			[]string{"2026-03-30T00:30:00Z"}},
		{"spring forward: 03:30 is untouched",
			"30 3 * * *", "2026-03-28T03:00:00Z",
			[]string{"2026-03-29T01:30:00Z", "2026-03-30T01:30:00Z"}},
		{"spring forward: hourly follows elapsed time",
			"30 * * * *", "2026-03-28T23:30:00Z",
			[]string{"2026-03-29T00:30:00Z", "2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z"}},
		{"fall back: repeated 02:30 fires once, at the first",
			"30 2 * * *", "2026-10-24T12:00:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"fall back: after the first 02:30 the second is skipped",
			"30 2 * * *", "2026-10-25T00:45:00Z",
			[]string{"2026-10-26T01:30:00Z"}},
		{"fall back: hourly fires in both 02:30s",
			"30 * * * *", "2026-10-24T23:45:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z", "2026-10-25T02:30:00Z"}},
		{"descriptor @daily in Berlin",
			"@daily", "2026-03-28T12:00:00Z",
			[]string{"2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"}},
	}
	loc := berlin(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := utc(tt.after)
			for i, w := range tt.want {
				got, err := schedule.Next(tt.spec, "Europe/Berlin", at)
				if err != nil {
					t.Fatalf("Next: %v", err)
				}
				if want := utc(w); !got.Equal(want) {
					t.Fatalf("activation %d after %s: got %s, want %s (%s)", i+1,
						at.In(loc), got.In(loc), want.In(loc), want)
				}
				if got.Location().String() != "Europe/Berlin" {
					t.Errorf("location: got %s, want Europe/Berlin", got.Location())
				}
				at = got
			}
		})
	}
}

// The library's own behaviour, which the package corrects; if a new
// robfig/cron version changes it, the DST policy needs a second look.
func TestLibraryDSTBehaviour(t *testing.T) {
	s, err := cron.ParseStandard("CRON_TZ=Europe/Berlin 30 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Next(utc("2026-03-28T02:00:00Z")), utc("2026-03-30T00:30:00Z"); !got.Equal(want) {
		t.Errorf("library spring forward: got %s, want %s (skips the day)", got.UTC(), want)
	}
	first := s.Next(utc("2026-10-24T12:00:00Z"))
	if got, want := s.Next(first), utc("2026-10-25T01:30:00Z"); !got.Equal(want) {
		t.Errorf("library fall back: got %s, want %s (fires twice)", got.UTC(), want)
	}
}

func TestLibraryPanicsOnMalformedPrefix(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("cron.ParseStandard(\"CRON_TZ=Europe/Berlin\") did not panic; the recover in parse may be dropped")
		}
	}()
	_, _ = cron.ParseStandard("CRON_TZ=Europe/Berlin")
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name, spec, tz string
		want           error
		mention        string
	}{
		{"weekday nightly", "0 3 * * 1-5", "Europe/Berlin", nil, ""},
		{"descriptor", "@daily", "", nil, ""},
		{"every", "@every 1h", "UTC", nil, ""},
		{"own prefix", "CRON_TZ=Europe/Berlin 0 3 * * *", "", nil, ""},
		{"own prefix and same tz", "TZ=UTC 0 3 * * *", "UTC", nil, ""},
		{"unknown zone in prefix", "CRON_TZ=Nowhere/Bad 0 3 * * *", "", schedule.ErrBadTimeZone, "Nowhere/Bad"},
		{"prefix without spec", "CRON_TZ=Europe/Berlin", "", schedule.ErrBadSpec, ""},
		{"empty prefix", "TZ=", "", schedule.ErrBadSpec, ""},
		{"unknown tz attribute", "0 3 * * *", "Mars/Olympus", schedule.ErrBadTimeZone, "Mars/Olympus"},
		{"prefix disagrees with tz", "CRON_TZ=UTC 0 3 * * *", "Europe/Berlin", schedule.ErrBadTimeZone, "Europe/Berlin"},
		{"four fields", "0 3 * *", "", schedule.ErrBadSpec, ""},
		{"six fields", "0 0 3 * * *", "", schedule.ErrBadSpec, ""},
		{"minute out of range", "61 3 * * *", "", schedule.ErrBadSpec, ""},
		{"never fires", "0 0 30 2 *", "", schedule.ErrBadSpec, "never"},
		{"empty", "  ", "", schedule.ErrBadSpec, ""},
		{"unknown descriptor", "@fortnightly", "", schedule.ErrBadSpec, ""},
		{"every one second", "@every 1s", "", nil, ""},
		{"every negative", "@every -5s", "", schedule.ErrBadSpec, "not a positive interval"},
		{"every zero", "@every 0s", "", schedule.ErrBadSpec, "not a positive interval"},
		{"every bare zero", "@every 0", "", schedule.ErrBadSpec, "not a positive interval"},
		{"every negative with zone", "CRON_TZ=UTC @every -1m", "", schedule.ErrBadSpec, "not a positive interval"},
		{"every negative, spaces", "  @every   -5s ", "", schedule.ErrBadSpec, "not a positive interval"},
		{"every sub-second", "@every 500ms", "", schedule.ErrBadSpec, "below one second"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := schedule.Validate(tt.spec, tt.tz)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Validate(%q, %q): got %v, want %v", tt.spec, tt.tz, err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}
