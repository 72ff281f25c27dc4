package deployer_test

import (
	"strings"
	"testing"

	"github.com/sre-tools/deployer"
)

// TestHostDeploymentID: a rollout's host deployment id is
// "<rollout>.<host>" when that is a valid id, else a valid id with a hash
// suffix that tells apart the inputs that cleaning made alike; always the
// same for the same rollout and host.
func TestHostDeploymentID(t *testing.T) {
	for _, tc := range []struct{ rollout, host, want string }{
		{"r-restart", "rt-h1", "r-restart.rt-h1"},
		{"web-2.0", "fra1-dep01.example.com", "web-2.0.fra1-dep01.example.com"},
		{"r1", "host with space", "r1.host_with_space-"},
		{"_r1", "h", "r_r1.h-"},
		{"r1", strings.Repeat("h", 200), "r1." + strings.Repeat("h", 128-3-13) + "-"},
	} {
		got := deployer.HostDeploymentID(tc.rollout, tc.host)
		if err := deployer.CheckDeploymentID(got); err != nil {
			t.Errorf("%q %q: %q is not a valid id: %v", tc.rollout, tc.host, got, err)
		}
		if again := deployer.HostDeploymentID(tc.rollout, tc.host); again != got {
			t.Errorf("%q %q: %q then %q, want the same id", tc.rollout, tc.host, got, again)
		}
		if strings.HasSuffix(tc.want, "-") {
			if !strings.HasPrefix(got, tc.want) || len(got) != len(tc.want)+12 || len(got) > deployer.MaxDeploymentID {
				t.Errorf("%q %q: got %q, want %q and 12 hex digits", tc.rollout, tc.host, got, tc.want)
			}
		} else if got != tc.want {
			t.Errorf("%q %q: got %q, want %q", tc.rollout, tc.host, got, tc.want)
		}
	}
	if a, b := deployer.HostDeploymentID("r1", "a b"), deployer.HostDeploymentID("r1", "a/b"); a == b {
		t.Errorf("hosts 'a b' and 'a/b' share id %q", a)
	}
	if a, b := deployer.HostDeploymentID("r1", strings.Repeat("h", 200)), deployer.HostDeploymentID("r1", strings.Repeat("h", 201)); a == b {
		t.Errorf("two long host names share id %q", a)
	}
}

func TestCheckDeploymentID(t *testing.T) {
	for _, ok := range []string{"a", "r-1.fra1-dep01", "web:2.0_rc1", "d1x", "D000000000000001", strings.Repeat("a", 128)} {
		if err := deployer.CheckDeploymentID(ok); err != nil {
			t.Errorf("%q: %v, want valid", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "-a", "_a", "a/b", "a b", "a\nb", "é", "d000000000000001", "d7", strings.Repeat("a", 129)} {
		if err := deployer.CheckDeploymentID(bad); err == nil {
			t.Errorf("%q: valid, want refused", bad)
		}
	}
}
