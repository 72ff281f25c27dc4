package syncer_test

import (
	"context"
	"fmt"
	"testing"
)

// TestCountBehind counts upstream commits not in a deployed commit, merges'
// side branches included, bounded by the limit.
func TestCountBehind(t *testing.T) {
	f := newFixture(t)
	deployed := f.tip()
	for i := 0; i < 3; i++ {
		f.push("instances/a.xml", fmt.Sprintf("<instance name=\"a\" version=\"%d\"/>\n", i+2), fmt.Sprintf("a %d", i))
	}
	// A merge of a side branch with two commits: git rev-list counts the
	// merge and both side commits.
	gitRun(t, f.human, "checkout", "-q", "-b", "side", deployed)
	f.write("instances/b.xml", "<instance name=\"b\" version=\"2\"/>\n")
	f.commit("b 2")
	f.write("instances/b.xml", "<instance name=\"b\" version=\"3\"/>\n")
	f.commit("b 3")
	gitRun(t, f.human, "checkout", "-q", "main")
	gitRun(t, f.human, "merge", "-q", "--no-edit", "side")
	gitRun(t, f.human, "push", "-q", "origin", "main")
	tip := f.tip()
	want := gitRun(t, f.human, "rev-list", "--count", deployed+".."+tip)
	if want != "6" {
		t.Fatalf("fixture: git counts %s commits, want 6", want)
	}
	r := f.open(f.options())
	if _, err := r.Sync(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	all := gitRun(t, f.human, "rev-list", "--count", tip)
	for _, c := range []struct {
		from  string
		limit int
		n     int
		more  bool
	}{
		{deployed, 1000, 6, false},
		{deployed, 6, 6, false},
		{deployed, 5, 5, true},
		{tip, 1000, 0, false},
		{"", 1000, 7, false},
		{"", 3, 3, true},
	} {
		n, more, err := r.CountBehind(c.from, tip, c.limit)
		if err != nil {
			t.Fatalf("CountBehind(%.7s, limit %d): %v", c.from, c.limit, err)
		}
		if n != c.n || more != c.more {
			t.Errorf("CountBehind(%.7s, limit %d) = %d, %v; want %d, %v", c.from, c.limit, n, more, c.n, c.more)
		}
	}
	if all != "7" {
		t.Errorf("fixture: git counts %s commits in all, want 7", all)
	}
	if _, _, err := r.CountBehind("0123456789012345678901234567890123456789", tip, 10); err == nil {
		t.Error("CountBehind from a commit the store does not have: no error")
	}
}
