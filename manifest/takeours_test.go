package manifest_test

import (
	"strings"
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

// TestMergeTakeOurs: "take ours" settles a value both sides changed with
// ours, on the element ours was made on, wherever theirs moved it; what no
// value can settle stays a conflict.
func TestMergeTakeOurs(t *testing.T) {
	base := `<instance>
  <server host="a" port="8001"/>
  <server host="b" port="8002"/>
  <server host="c" port="8003"/>
</instance>
`
	ours := strings.Replace(base, `"8002"`, `"9"`, 1)
	cases := []struct {
		name, theirs, want string
		conflicts          int
	}{
		{"theirs deleted a and set b", `<instance>
  <server host="b" port="7777"/>
  <server host="c" port="8003"/>
</instance>
`, `<instance>
  <server host="b" port="9"/>
  <server host="c" port="8003"/>
</instance>
`, 0},
		{"theirs inserted z above and set b", `<instance>
  <server host="z" port="1"/>
  <server host="a" port="8001"/>
  <server host="b" port="7777"/>
  <server host="c" port="8003"/>
</instance>
`, `<instance>
  <server host="z" port="1"/>
  <server host="a" port="8001"/>
  <server host="b" port="9"/>
  <server host="c" port="8003"/>
</instance>
`, 0},
		{"theirs removed b", `<instance>
  <server host="a" port="8001"/>
  <server host="c" port="8003"/>
</instance>
`, "", 1},
		{"theirs duplicated b", `<instance>
  <server host="a" port="8001"/>
  <server host="b" port="8002"/>
  <server host="b" port="8002"/>
  <server host="c" port="8003"/>
</instance>
`, "", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, conflicts, err := manifest.MergeTakeOurs([]byte(base), []byte(ours), []byte(c.theirs), manifest.DiffOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(conflicts) != c.conflicts {
				t.Fatalf("want %d conflicts, got %v", c.conflicts, conflicts)
			}
			if c.conflicts == 0 && string(got) != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
			// Merge itself still reports the value both changed.
			if c.conflicts == 0 {
				if _, cs, _ := manifest.Merge([]byte(base), []byte(ours), []byte(c.theirs), manifest.DiffOptions{}); len(cs) != 1 {
					t.Errorf("Merge: want the port conflict, got %v", cs)
				}
			}
		})
	}
}
