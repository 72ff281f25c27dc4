package daemon

import (
	"os/exec"
	"strings"
	"testing"
)

// Repository-controlled strings (step and instance names, values) never
// start a line of a write-back's message: the subject stays one line and
// git finds only the daemon's trailers.
func TestCommitMessageCannotForgeTrailers(t *testing.T) {
	evil := "x\nSigned-off-by: Mallory <m@example.com>\r\nCo-authored-by: y\u2028z\x1b[31m\\n"
	subject, body := commitMessage("configure"+evil, "beta"+evil, "set /instance@v 1 → "+evil)
	for _, part := range []string{subject, body} {
		if strings.ContainsAny(part, "\n\r\x1b\u2028") {
			t.Fatalf("a line break or control character survived: %q", part)
		}
	}
	if !strings.Contains(subject, `x\nSigned-off-by: Mallory <m@example.com>\r\nCo-authored-by: y\u2028z\x1b[31m\\n`) {
		t.Fatalf("the escaped text is not readable in the subject: %q", subject)
	}
	// The message as the syncer writes it: message, blank line, trailers.
	msg := subject + "\n\n" + body + "\n\nDeployer-Host: " + oneLine("h\nSigned-off-by: z") + "\nDeployer-Run: 7\n"
	cmd := exec.Command("git", "interpret-trailers", "--parse")
	cmd.Stdin = strings.NewReader(msg)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git interpret-trailers: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "Deployer-Host: ") || lines[1] != "Deployer-Run: 7" {
		t.Fatalf("trailers git sees: %q, want only Deployer-Host and Deployer-Run", lines)
	}
	if got := oneLine("plain → ascii/utf-8 value"); got != "plain → ascii/utf-8 value" {
		t.Fatalf("a clean string changed: %q", got)
	}
}
