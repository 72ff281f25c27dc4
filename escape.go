package deployer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s fit for one line or one table cell of human output:
// control characters are written as escapes (\n, \r, \t, \x1b, \u0085),
// and so are the Unicode line and paragraph separators, the bidirectional
// overrides (which reorder what a terminal shows) and bytes that are not
// UTF-8. Repository content (instance names, file names, commit subjects,
// values, step output) can then neither start a new line, add a table row
// or column, nor send escape sequences to the terminal. Other characters,
// backslash included, are left alone.
func Escape(s string) string { return escape(s, false) }

// EscapeBlock is Escape for multi-line text shown as a block (step output,
// evidence): line breaks and tabs are kept, everything else Escape escapes
// is escaped (a lone \r, which would overwrite a line, included).
func EscapeBlock(s string) string { return escape(s, true) }

func escape(s string, block bool) string {
	clean := true
	for _, r := range s {
		if needsEscape(r, block) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !needsEscape(r, block):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

func needsEscape(r rune, block bool) bool {
	switch {
	case block && (r == '\n' || r == '\t'):
		return false
	case r == utf8.RuneError:
		return true // also catches invalid bytes, which range decodes as RuneError
	case unicode.IsControl(r):
		return true
	case r == '\u2028' || r == '\u2029': // line and paragraph separators
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069', r == '\u200e', r == '\u200f', r == '\u061c': // bidi controls
		return true
	}
	return false
}
