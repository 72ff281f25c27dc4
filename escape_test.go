package deployer_test

import (
	"testing"

	deployer "github.com/sre-tools/deployer"
)

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ in, line, block string }{
		{"web-01", "web-01", "web-01"},
		{"a\nb", `a\nb`, "a\nb"},
		{"a\tb", `a\tb`, "a\tb"},
		{"a\r\nb", `a\r\nb`, "a\\r\nb"},
		{"\x1b[31mred", `\x1b[31mred`, `\x1b[31mred`},
		{"nul\x00del\x7f", `nul\x00del\x7f`, `nul\x00del\x7f`},
		{"nel\u0085ls\u2028ps\u2029", `nel\x85ls\u2028ps\u2029`, `nel\x85ls\u2028ps\u2029`},
		{"rtl\u202eevil", `rtl\u202eevil`, `rtl\u202eevil`},
		{"bad\xffutf8", `bad\xffutf8`, `bad\xffutf8`},
		{`back\slash`, `back\slash`, `back\slash`},
		{"ünïcödé 日本", "ünïcödé 日本", "ünïcödé 日本"},
	} {
		if got := deployer.Escape(tc.in); got != tc.line {
			t.Errorf("Escape(%q) = %q, want %q", tc.in, got, tc.line)
		}
		if got := deployer.EscapeBlock(tc.in); got != tc.block {
			t.Errorf("EscapeBlock(%q) = %q, want %q", tc.in, got, tc.block)
		}
		if deployer.Escape(deployer.Escape(tc.in)) != deployer.Escape(tc.in) {
			t.Errorf("Escape is not idempotent on %q", tc.in)
		}
	}
}
