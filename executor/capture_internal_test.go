package executor

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// TestCaptureKeepsHeadAndTail compares the capture with a reference for
// random streams and chunkings.
func TestCaptureKeepsHeadAndTail(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		limit := 1 + rng.IntN(64)
		data := make([]byte, rng.IntN(200))
		for j := range data {
			data[j] = byte('a' + rng.IntN(26))
		}
		c := newCapture(limit)
		for rest := data; len(rest) > 0; {
			n := 1 + rng.IntN(len(rest))
			c.write(rest[:n])
			rest = rest[n:]
		}
		head, tail, truncated := c.result()
		h := limit / 2
		wantHead, wantTail, wantTrunc := string(data), "", false
		if len(data) > limit {
			wantHead, wantTail, wantTrunc = string(data[:h]), string(data[len(data)-(limit-h):]), true
		}
		if head != wantHead || tail != wantTail || truncated != wantTrunc {
			t.Fatalf("case %d (limit %d, %d bytes): got %q %q %v, want %q %q %v", i, limit, len(data), head, tail, truncated, wantHead, wantTail, wantTrunc)
		}
	}
}

// TestPumpRedactsAcrossCuts feeds lines longer than the reader's buffer with
// the secret at every offset around the cut.
func TestPumpRedactsAcrossCuts(t *testing.T) {
	secret := "0123456789-very-secret-value"
	red := newRedactor(map[string]string{"S": secret})
	for off := 16<<10 - len(secret); off <= 16<<10; off++ {
		line := strings.Repeat("x", off) + secret + strings.Repeat("y", 100) + "\n"
		var logs bytes.Buffer
		c := newCapture(1 << 20)
		sink{c: c, red: red, log: zerolog.New(&logs).Level(zerolog.DebugLevel)}.pump(strings.NewReader(line + "tail " + secret))
		head, _, _ := c.result()
		want := strings.Replace(line, secret, "[redacted S]", 1) + "tail [redacted S]"
		if head != want {
			t.Fatalf("offset %d: output differs from the redacted input", off)
		}
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("offset %d: secret in the log", off)
		}
		if c.raw != int64(len(line)+len("tail ")+len(secret)) {
			t.Fatalf("offset %d: raw count %d", off, c.raw)
		}
	}
}

// A short secret value never changes a value that is not the secret (an
// env_files value of 0 made a date in an output "2[redacted DEBUG]26-…");
// an output that is exactly the secret is still redacted.
func TestRedactShortValue(t *testing.T) {
	red := newRedactor(map[string]string{"DEBUG": "0", "TOKEN": "s3cr3t-tok"})
	out := red.stringMap(map[string]string{"date": "2026-12-02", "debug": "0", "auth": "bearer s3cr3t-tok"})
	want := map[string]string{"date": "2026-12-02", "debug": "[redacted DEBUG]", "auth": "bearer [redacted TOKEN]"}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("output %s: %q, want %q", k, out[k], v)
		}
	}
	if got := red.string("deployed 2026-12-02 with 0 errors"); got != "deployed 2026-12-02 with 0 errors" {
		t.Errorf("text: %q", got)
	}
}
