package manifest_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

// TestCronValidatedOnce: the manifest refuses what the scheduler would
// refuse (a spec that never fires, a zone that does not exist or
// disagrees), with file and line, and ParseCron never panics.
func TestCronValidatedOnce(t *testing.T) {
	for _, tc := range []struct{ cron, tz, want string }{
		{"0 0 30 2 *", "", "never fires"},
		{"CRON_TZ=Nowhere/Bad 0 3 * * *", "", "Nowhere/Bad"},
		{"CRON_TZ=UTC 0 3 * * *", "Europe/Berlin", "disagrees"},
		{"CRON_TZ=Europe/Berlin", "", "nothing after the time zone"},
		{"TZ=", "", "bad cron spec"},
	} {
		tz := ""
		if tc.tz != "" {
			tz = ` tz="` + tc.tz + `"`
		}
		_, err := manifest.Parse("deployer.xml", []byte(`<deployer version="1">
  <step name="s" run="s.sh"/>
  <schedule name="n" cron="`+tc.cron+`"`+tz+` steps="s"/>
</deployer>`), manifest.Options{})
		if err == nil || !strings.Contains(err.Error(), "deployer.xml:3:") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s (tz %q): got %v, want an error at line 3 mentioning %q", tc.cron, tc.tz, err, tc.want)
		}
		if _, _, err := manifest.ParseCron(tc.cron, tc.tz); !errors.Is(err, manifest.ErrBadCron) && !errors.Is(err, manifest.ErrBadTimeZone) {
			t.Errorf("ParseCron(%q, %q): %v", tc.cron, tc.tz, err)
		}
	}
	sched, zoned, err := manifest.ParseCron("0 3 * * *", "Europe/Berlin")
	if err != nil || !zoned || sched == nil {
		t.Fatalf("ParseCron with tz: %v, %v", zoned, err)
	}
}
