package manifest

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// parseRef parses a reference at the start of b ("&...;"). It returns the
// decoded text (the reference itself for entities other than the five
// predefined ones), the number of bytes consumed and whether it is well-formed.
func parseRef(b []byte) (string, int, bool) {
	end := -1
	for i := 1; i < len(b) && i < 64; i++ {
		if b[i] == ';' {
			end = i
			break
		}
	}
	if end < 2 {
		return "", 0, false
	}
	body := string(b[1:end])
	if body[0] == '#' {
		r, ok := parseCharRef(body[1:])
		if !ok {
			return "", 0, false
		}
		return string(r), end + 1, true
	}
	switch body {
	case "lt":
		return "<", end + 1, true
	case "gt":
		return ">", end + 1, true
	case "amp":
		return "&", end + 1, true
	case "apos":
		return "'", end + 1, true
	case "quot":
		return "\"", end + 1, true
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 0x80 || c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' ||
			i > 0 && (c == '-' || c == '.' || c >= '0' && c <= '9')) {
			return "", 0, false
		}
	}
	return string(b[:end+1]), end + 1, true
}

func parseCharRef(s string) (rune, bool) {
	var v uint64
	var err error
	if strings.HasPrefix(s, "x") {
		v, err = strconv.ParseUint(s[1:], 16, 32)
	} else {
		v, err = strconv.ParseUint(s, 10, 32)
	}
	if err != nil || v == 0 || v > utf8.MaxRune || v >= 0xD800 && v <= 0xDFFF || len(s) == 0 || s[0] == '+' || len(s) > 1 && s[1] == '+' {
		return 0, false
	}
	return rune(v), true
}

// unit is one decoded piece of a raw value and the raw bytes it came from.
type unit struct {
	dec    string
	rs, re int // raw span, absolute offsets
}

// decodeUnits splits raw (starting at absolute offset base) into units: one per
// literal byte, line break or reference. Attribute values get attribute-value
// normalization (a literal tab or line break reads as a space).
func decodeUnits(raw []byte, base int, isAttr bool) []unit {
	us := make([]unit, 0, len(raw))
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '&':
			dec, n, ok := parseRef(raw[i:])
			if !ok {
				dec, n = "&", 1
			}
			us = append(us, unit{dec, base + i, base + i + n})
			i += n
		case c == '\r' || c == '\n' || c == '\t':
			n := 1
			if c == '\r' && i+1 < len(raw) && raw[i+1] == '\n' {
				n = 2
			}
			dec := "\n"
			if c == '\t' {
				dec = "\t"
			}
			if isAttr {
				dec = " "
			}
			us = append(us, unit{dec, base + i, base + i + n})
			i += n
		default:
			us = append(us, unit{string(raw[i : i+1]), base + i, base + i + 1})
			i++
		}
	}
	return us
}

// decodeString returns the normalized value of raw text or attribute bytes.
func decodeString(raw []byte, isAttr bool) string {
	plain := true
	for _, c := range raw {
		if c == '&' || c == '\r' || isAttr && (c == '\n' || c == '\t') {
			plain = false
			break
		}
	}
	if plain {
		return string(raw)
	}
	var sb strings.Builder
	sb.Grow(len(raw))
	for _, u := range decodeUnits(raw, 0, isAttr) {
		sb.WriteString(u.dec)
	}
	return sb.String()
}

// escapeAttr escapes v for an attribute value delimited by quote. Tabs and
// line breaks become character references so that they survive normalization.
func escapeAttr(v string, quote byte) string {
	var sb strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '&':
			sb.WriteString("&amp;")
		case c == '<':
			sb.WriteString("&lt;")
		case c == '"' && quote == '"':
			sb.WriteString("&quot;")
		case c == '\'' && quote == '\'':
			sb.WriteString("&apos;")
		case c == '\n':
			sb.WriteString("&#10;")
		case c == '\r':
			sb.WriteString("&#13;")
		case c == '\t':
			sb.WriteString("&#9;")
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// escapeText escapes v for character data. prev is the decoded text that will
// precede it, so that a "]]>" spanning the boundary is caught; newline is the
// document's line ending.
func escapeText(v, prev, newline string) string {
	var sb strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '&':
			sb.WriteString("&amp;")
		case '<':
			sb.WriteString("&lt;")
		case '>':
			if strings.HasSuffix(prev+v[:i], "]]") {
				sb.WriteString("&gt;")
			} else {
				sb.WriteByte(c)
			}
		case '\r':
			sb.WriteString("&#13;")
		case '\n':
			sb.WriteString(newline)
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// escapeCData writes v as the content of a CDATA section.
func escapeCData(v, newline string) string {
	v = strings.ReplaceAll(v, "]]>", "]]]]><![CDATA[>")
	v = strings.ReplaceAll(v, "\r", "]]>&#13;<![CDATA[")
	if newline != "\n" {
		v = strings.ReplaceAll(v, "\n", newline)
	}
	return v
}
