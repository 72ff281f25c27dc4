package syncer_test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

// bigRemote makes a bare repository with files instance files in instances/ (about 6 KB
// each, as in the benchmark) in one commit, with git fast-import.
func bigRemote(tb testing.TB, files int) string {
	tb.Helper()
	bare := filepath.Join(tb.TempDir(), "remote.git")
	gitRun(tb, filepath.Dir(bare), "init", "-q", "--bare", "-b", "main", bare)
	var b strings.Builder
	b.WriteString("commit refs/heads/main\ncommitter Human <human@example.com> 1700000000 +0000\ndata 7\ninitial\n")
	pad := strings.Repeat("  <param name=\"p\" value=\"0123456789abcdef0123456789abcdef\"/>\n", 100)
	for i := 0; i < files; i++ {
		data := fmt.Sprintf("<instance name=\"i%05d\" revision=\"0\">\n%s</instance>\n", i, pad)
		fmt.Fprintf(&b, "M 100644 inline instances/i%05d.xml\ndata %d\n%s\n", i, len(data), data)
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = bare
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("fast-import: %v\n%s", err, out)
	}
	return bare
}

// BenchmarkWriteBack200 lands 200 changes (one commit each, 200 different files) in one
// WriteBack on a 10,000-file repository served over file://.
func BenchmarkWriteBack200(b *testing.B) {
	bare := bigRemote(b, 10000)
	f := &fixture{tb: b, bare: bare, dir: filepath.Join(b.TempDir(), "checkout"), remote: bare}
	r := f.open(f.options())
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		changes := make([]syncer.Change, 200)
		for i := range changes {
			p := fmt.Sprintf("instances/i%05d.xml", (i*37+n*200)%10000)
			changes[i] = change(fmt.Sprintf("b%d-%d", n, i), p, "revision", "0", "1") // each file once (n < 50)
		}
		out, err := r.WriteBack(ctxT(b), changes, 1)
		if err != nil {
			b.Fatal(err)
		}
		for i, o := range out {
			if o.Status != syncer.OutcomeLanded {
				b.Fatalf("change %d: %s (%v)", i, o.Status, o.Err)
			}
		}
	}
}
