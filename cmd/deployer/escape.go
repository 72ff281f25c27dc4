package main

import (
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/sre-tools/deployer"
)

// printf is fmt.Fprintf for human output (tables, show views, status):
// the format is ours, the arguments are data, much of it from repositories.
// Every argument of a string kind (named string types included), every
// []string and every error is escaped with
// deployer.Escape, so none can start a line, add a table row or column, or send
// escape sequences to the terminal; under %q the original is quoted (%q
// escapes by itself). A block argument is already escaped and is passed
// as it is.
func printf(w io.Writer, format string, args ...any) {
	for i, a := range args {
		switch v := a.(type) {
		case block:
			args[i] = string(v)
			continue
		case error:
			args[i] = cell(v.Error())
			continue
		case fmt.Formatter:
			continue
		}
		rv := reflect.ValueOf(a)
		switch {
		case !rv.IsValid():
		case rv.Kind() == reflect.String:
			args[i] = cell(rv.String())
		case rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() == reflect.String:
			cs := make([]cell, rv.Len())
			for j := range cs {
				cs[j] = cell(rv.Index(j).String())
			}
			args[i] = cs
		}
	}
	fmt.Fprintf(w, format, args...)
}

// cell is a data string in human output; see printf.
type cell string

// Format writes the escaped string, or under %q the original quoted.
func (c cell) Format(f fmt.State, verb rune) {
	s := string(c)
	if verb != 'q' {
		s = deployer.Escape(s)
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s)
}

// block is multi-line text already escaped by deployer.EscapeBlock and indented.
type block string

// indent escapes a multi-line text as a block (line breaks kept, control
// characters and escape sequences escaped) and indents every line after
// the first with prefix: a line of content cannot pass for a line of the
// view around it.
func indent(s, prefix string) block {
	return block(strings.ReplaceAll(deployer.EscapeBlock(s), "\n", "\n"+prefix))
}
