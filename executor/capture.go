package executor

import (
	"bufio"
	"bytes"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/rs/zerolog"
)

// MinRedactLen is the length from which a secret value is redacted
// wherever it occurs in a text: a shorter one ("0", "yes") is in too many
// values that are not the secret (a date, a count), so it is redacted only
// where a whole recorded value (an output, a reason) equals it.
const MinRedactLen = 4

// redactor replaces secret values with "[redacted NAME]".
type redactor struct {
	rep    *strings.Replacer
	maxLen int
	short  map[string]string // short value -> its replacement, whole values only
}

func newRedactor(secrets map[string]string) *redactor {
	names := make([]string, 0, len(secrets))
	short := map[string]string{}
	for n, v := range secrets {
		switch {
		case v == "":
		case len(v) < MinRedactLen:
			if old, ok := short[v]; !ok || "[redacted "+n+"]" < old {
				short[v] = "[redacted " + n + "]"
			}
		default:
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return &redactor{short: short}
	}
	// Longer values first, so that a secret containing another wins.
	sort.Slice(names, func(i, j int) bool {
		a, b := secrets[names[i]], secrets[names[j]]
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return names[i] < names[j]
	})
	r := &redactor{short: short}
	pairs := make([]string, 0, 2*len(names))
	for _, n := range names {
		pairs = append(pairs, secrets[n], "[redacted "+n+"]")
		r.maxLen = max(r.maxLen, len(secrets[n]))
	}
	r.rep = strings.NewReplacer(pairs...)
	return r
}

func (r *redactor) string(s string) string {
	if r == nil || r.rep == nil {
		return s
	}
	return r.rep.Replace(s)
}

func (r *redactor) bytes(b []byte) []byte {
	if r == nil || r.rep == nil {
		return b
	}
	return []byte(r.rep.Replace(string(b)))
}

func (r *redactor) stringMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[r.string(k)] = r.value(v)
	}
	return out
}

// value redacts a whole recorded value: a short secret only when it is
// the entire value, a longer one wherever it occurs.
func (r *redactor) value(v string) string {
	if r == nil {
		return v
	}
	if rep, ok := r.short[v]; ok {
		return rep
	}
	return r.string(v)
}

// capture keeps the head and tail of a stream.
type capture struct {
	head    []byte
	headMax int
	tail    []byte // ring
	tailMax int
	tailPos int
	tailN   int64 // bytes written to the ring in total
	raw     int64 // bytes read from the process
}

func newCapture(limit int) *capture {
	h := limit / 2
	return &capture{headMax: h, tailMax: limit - h}
}

func (c *capture) write(p []byte) {
	if n := min(c.headMax-len(c.head), len(p)); n > 0 {
		c.head = append(c.head, p[:n]...)
		p = p[n:]
	}
	for len(p) > 0 && c.tailMax > 0 {
		if len(c.tail) < c.tailMax {
			n := min(c.tailMax-len(c.tail), len(p))
			c.tail = append(c.tail, p[:n]...)
			p, c.tailN = p[n:], c.tailN+int64(n)
			continue
		}
		n := copy(c.tail[c.tailPos:], p)
		c.tailPos = (c.tailPos + n) % c.tailMax
		p, c.tailN = p[n:], c.tailN+int64(n)
	}
}

// result returns head and tail; when nothing was cut, all of it is the head.
func (c *capture) result() (head, tail string, truncated bool) {
	ordered := append(append([]byte{}, c.tail[c.tailPos:]...), c.tail[:c.tailPos]...)
	if c.tailN <= int64(c.tailMax) {
		return string(c.head) + string(ordered), "", false
	}
	return string(c.head), string(ordered), true
}

// sink is where a step's output goes.
type sink struct {
	c      *capture
	stream io.Writer // may be nil
	red    *redactor
	log    zerolog.Logger
	// stdout and stderr, when set (a scenario's run, whose test may check
	// them apart), also keep each stream alone: the process then writes
	// them to two pipes, pumped under mu into the combined capture.
	stdout, stderr *capture
	mu             *sync.Mutex
	// only is the capture of the stream this pump reads, besides c.
	only *capture
}

// split reports whether stdout and stderr are kept apart.
func (s sink) split() bool { return s.stdout != nil && s.stderr != nil }

// pump reads the combined output until EOF: redacts it, keeps head and tail,
// copies it to the stream, and logs it line by line at debug level.
func (s sink) pump(rd io.Reader) {
	c, red, log := s.c, s.red, s.log
	debug := log.Debug().Enabled()
	br := bufio.NewReaderSize(rd, 16<<10)
	var carry []byte
	emit := func(b []byte) {
		if len(b) == 0 {
			return
		}
		if s.mu != nil {
			s.mu.Lock()
			defer s.mu.Unlock()
		}
		c.write(b)
		if s.only != nil {
			s.only.write(b)
		}
		if s.stream != nil {
			_, _ = s.stream.Write(b)
		}
		if debug {
			log.Debug().Str("line", string(bytes.TrimRight(b, "\r\n"))).Msg("step output")
		}
	}
	for {
		piece, err := br.ReadSlice('\n')
		if s.mu != nil {
			s.mu.Lock()
		}
		c.raw += int64(len(piece))
		if s.mu != nil {
			s.mu.Unlock()
		}
		if len(piece) > 0 {
			out := piece
			if red.rep != nil {
				out = red.bytes(append(carry, piece...))
				carry = nil
				if err == bufio.ErrBufferFull {
					// A secret may straddle the cut: hold back its possible prefix.
					keep := min(red.maxLen-1, len(out))
					carry = append([]byte{}, out[len(out)-keep:]...)
					out = out[:len(out)-keep]
				}
			}
			emit(out)
		}
		if err != nil && err != bufio.ErrBufferFull {
			emit(carry)
			return
		}
	}
}
