package manifest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

var (
	// ErrInvalid is returned (wrapped in *ProblemsError) when a manifest or
	// instance file has validation problems.
	ErrInvalid = errors.New("invalid")
	// ErrSyntax is returned (as *SyntaxError) when a document is not
	// well-formed XML.
	ErrSyntax = errors.New("XML syntax error")
	// ErrNoTarget is returned (as *TargetError) when an edit's path matches no
	// element, or its attribute is gone.
	ErrNoTarget = errors.New("edit target not found")
	// ErrAmbiguousTarget is returned (as *TargetError) when an edit's path
	// matches more than one element.
	ErrAmbiguousTarget = errors.New("edit target is ambiguous")
	// ErrBadEdit is returned when an edit is malformed: an unknown operation,
	// a bad path, an invalid name or XML fragment, or text set on an element
	// that has child elements.
	ErrBadEdit = errors.New("bad edit")
	// ErrUnsupportedChange is returned by Diff and Merge when two versions
	// differ in a way edits cannot express (a different root element).
	ErrUnsupportedChange = errors.New("change not expressible as edits")
)

// SyntaxError reports where a document stops being well-formed XML.
type SyntaxError struct {
	Offset    int // byte offset
	Line, Col int // 1-based; Col counts characters
	Msg       string
	Limit     bool // the document exceeds a Limits cap (errors.Is ErrLimit)
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// Is makes errors.Is(err, ErrSyntax) true.
// It also matches ErrLimit when a cap was exceeded.
func (e *SyntaxError) Is(target error) bool {
	return target == ErrSyntax || e.Limit && target == ErrLimit
}

// TargetError is returned when an edit's target is not exactly one element
// (or the attribute to change is gone).
type TargetError struct {
	Path    string
	Attr    string // set when the element exists but the attribute does not
	Matched int    // how many elements the path matched
}

func (e *TargetError) Error() string {
	switch {
	case e.Matched == 1 && e.Attr != "":
		return fmt.Sprintf("%s has no attribute %q", e.Path, e.Attr)
	case e.Matched == 0:
		return fmt.Sprintf("path %s matches no element", e.Path)
	}
	return fmt.Sprintf("path %s matches %d elements, want exactly one", e.Path, e.Matched)
}

// Is makes errors.Is work with ErrNoTarget and ErrAmbiguousTarget.
func (e *TargetError) Is(target error) bool {
	if e.Matched > 1 {
		return target == ErrAmbiguousTarget
	}
	return target == ErrNoTarget
}

// Problem is one validation problem, located in a file.
type Problem struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Col     int    `json:"col,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

// Error renders the problem as "file:line:col: message (hint: ...)".
func (p Problem) Error() string {
	var sb strings.Builder
	if strings.IndexFunc(p.File, unicode.IsControl) >= 0 {
		sb.WriteString(strconv.Quote(p.File)) // a file name never starts a new line
	} else {
		sb.WriteString(p.File)
	}
	if p.Line > 0 {
		fmt.Fprintf(&sb, ":%d:%d", p.Line, p.Col)
	}
	sb.WriteString(": ")
	sb.WriteString(p.Message)
	if p.Hint != "" {
		sb.WriteString(" (hint: ")
		sb.WriteString(p.Hint)
		sb.WriteString(")")
	}
	return sb.String()
}

// ProblemsError collects every problem found in one validation pass.
type ProblemsError struct{ Problems []Problem }

// Error renders one problem per line.
func (e *ProblemsError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ProblemsError) Is(target error) bool { return target == ErrInvalid }

// syntaxProblem turns a parse error of file into a Problem.
func syntaxProblem(file string, err error) Problem {
	var se *SyntaxError
	if errors.As(err, &se) {
		return Problem{File: file, Line: se.Line, Col: se.Col, Message: se.Msg, Hint: "the file must be well-formed XML"}
	}
	return Problem{File: file, Message: err.Error()}
}
