package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/manifest"
)

// xmlExitError carries the exit status of an xml subcommand (3 when a merge
// has conflicts); a nil Err prints nothing.
type xmlExitError struct {
	Code int
	Err  error
}

func (e *xmlExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *xmlExitError) Unwrap() error { return e.Err }

// newXMLCmd returns "deployer xml" with its edit and merge subcommands.
func newXMLCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "xml",
		Short: "Edit and merge XML files without reformatting them",
		Long: `Byte-preserving XML tools: only the edited values change; quoting,
indentation, line endings, comments and everything else stay as they were.

PATH is an etree path such as /instance/app[@name='web'] that must match
exactly one element.`,
	}
	cmd.AddCommand(newXMLEditCmd(g), newXMLMergeCmd(g))
	return cmd
}

type xmlEditOptions struct {
	sets, texts, removes, inserts []string
	write                         bool
}

func newXMLEditCmd(g *globalOptions) *cobra.Command {
	o := &xmlEditOptions{}
	cmd := &cobra.Command{
		Use:   "edit FILE",
		Short: "Change attributes, text or elements of an XML file in place of sed",
		Long: `Apply edits to FILE and print the result, or with -w write it back.
With -o json or -o yaml the result is {"file", "edits", "written", "document"}
(document: the edited XML, absent with -w).
The edits run in this order: every --set, every --text, every --remove, every --insert
(each kind in the order given).

  --set PATH@ATTR=VALUE   set (or add) an attribute
  --text PATH=VALUE       set the text of a leaf element
  --remove PATH           remove an element (with its line when it stands alone)
  --remove PATH@ATTR      remove an attribute
  --insert PATH=XML       append the element XML to PATH's children

Exit status: 0 success, 1 error (bad XML, a path that does not match exactly one element), 2 usage.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := g.format()
			if err != nil {
				return err
			}
			return runXMLEdit(cmd, args[0], o, f)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.sets, "set", nil, "PATH@ATTR=VALUE: set an attribute")
	f.StringArrayVar(&o.texts, "text", nil, "PATH=VALUE: set the text of a leaf element")
	f.StringArrayVar(&o.removes, "remove", nil, "PATH or PATH@ATTR: remove an element or an attribute")
	f.StringArrayVar(&o.inserts, "insert", nil, "PATH=XML: append an element to PATH")
	f.BoolVarP(&o.write, "write", "w", false, "write the result back to FILE instead of printing it")
	return cmd
}

func runXMLEdit(cmd *cobra.Command, file string, o *xmlEditOptions, f outputFormat) error {
	edits, err := xmlEditsFromFlags(o)
	if err != nil {
		return &xmlExitError{Code: 2, Err: err}
	}
	if len(edits) == 0 {
		return &xmlExitError{Code: 2, Err: errors.New("xml edit: no edits given (use --set, --text, --remove or --insert)")}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("xml edit: %w", err)
	}
	out, err := manifest.Apply(data, edits)
	if err != nil {
		return fmt.Errorf("xml edit %s: %w", file, err)
	}
	res := xmlEditResult{File: file, Edits: make([]string, len(edits)), Written: o.write}
	for i, e := range edits {
		res.Edits[i] = e.String()
	}
	if !o.write {
		if f.structured() {
			res.Document = string(out)
			return f.print(cmd.OutOrStdout(), res)
		}
		_, err := cmd.OutOrStdout().Write(out)
		return err
	}
	if err := xmlWriteFile(file, out); err != nil {
		return fmt.Errorf("xml edit: %w", err)
	}
	if f.structured() {
		return f.print(cmd.OutOrStdout(), res)
	}
	for _, e := range res.Edits {
		fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", file, e)
	}
	return nil
}

// xmlEditResult is xml edit's -o json/yaml.
type xmlEditResult struct {
	File     string   `json:"file"`
	Edits    []string `json:"edits"`
	Written  bool     `json:"written"`
	Document string   `json:"document,omitempty"`
}

// xmlEditsFromFlags turns the flags into edits, in the documented order,
// with the parser deploy uses too.
func xmlEditsFromFlags(o *xmlEditOptions) ([]manifest.Edit, error) {
	return manifest.ParseEdits(manifest.EditSpec{Set: o.sets, Text: o.texts, Remove: o.removes, Insert: o.inserts})
}

// xmlWriteFile replaces file atomically, keeping its permissions.
func xmlWriteFile(file string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(file); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

type xmlMergeOptions struct {
	outFile string
	keys    []string
}

func newXMLMergeCmd(g *globalOptions) *cobra.Command {
	o := &xmlMergeOptions{}
	cmd := &cobra.Command{
		Use:   "merge BASE OURS THEIRS",
		Short: "Three-way merge of XML files at element granularity",
		Long: `Merge the changes from BASE to OURS into THEIRS and print the result.
Elements are matched by tag plus a key attribute (name, id or key; see --key).
Siblings without a key are matched by content, not position: unchanged ones
by identical content (wherever they moved), changed ones by similarity of
their attributes, text and children. So an edit stays on its element when the
other side inserted, removed or reordered siblings around it. Changes to
different elements or attributes merge; the same attribute or text changed
differently, an element changed on one side and removed on the other, the
same keyed element inserted twice with different content, or a changed
element that matches several equally good candidates on the other side
("ambiguous", never a guess) is a conflict.

On conflict nothing is printed but the conflict list (one per line), unless
--output-file (-O) names a file for the merged document (theirs kept at each
conflict). -o is the output format, as everywhere: with -o json or -o yaml
the result is {"conflicts": [{"kind","path","attr","base","ours","theirs"}],
"document", "output_file"} (document: the merged XML, absent with -O or on
conflict).

Exit status: 0 merged, 1 error, 2 usage, 3 conflicts.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := g.format()
			if err != nil {
				return usageErrorf("%v; the merged document's file is --output-file FILE (-O FILE)", errors.Unwrap(err))
			}
			return runXMLMerge(cmd, args, o, f)
		},
	}
	cmd.Flags().StringVarP(&o.outFile, "output-file", "O", "", "write the merged document to this file instead of stdout")
	cmd.Flags().StringSliceVar(&o.keys, "key", nil, "key attributes that identify elements, in order of preference (default name,id,key)")
	return cmd
}

// xmlMergeResult is xml merge's -o json/yaml.
type xmlMergeResult struct {
	Conflicts  []manifest.Conflict `json:"conflicts"`
	Document   string              `json:"document,omitempty"`
	OutputFile string              `json:"output_file,omitempty"`
}

func runXMLMerge(cmd *cobra.Command, args []string, o *xmlMergeOptions, f outputFormat) error {
	var docs [3][]byte
	for i, name := range args {
		data, err := os.ReadFile(name)
		if err != nil {
			return fmt.Errorf("xml merge: %w", err)
		}
		docs[i] = data
	}
	out, conflicts, err := manifest.Merge(docs[0], docs[1], docs[2], manifest.DiffOptions{KeyAttrs: o.keys})
	if err != nil {
		return fmt.Errorf("xml merge: %w", err)
	}
	if o.outFile != "" {
		if err := xmlWriteFile(o.outFile, out); err != nil {
			return fmt.Errorf("xml merge: %w", err)
		}
	}
	if f.structured() {
		res := xmlMergeResult{Conflicts: conflicts, OutputFile: o.outFile}
		if res.Conflicts == nil {
			res.Conflicts = []manifest.Conflict{}
		}
		if o.outFile == "" && len(conflicts) == 0 {
			res.Document = string(out)
		}
		if err := f.print(cmd.OutOrStdout(), res); err != nil {
			return err
		}
		if len(conflicts) > 0 {
			return &xmlExitError{Code: 3, Err: fmt.Errorf("xml merge: %d conflicts", len(conflicts))}
		}
		return nil
	}
	if o.outFile == "" && len(conflicts) == 0 {
		if _, err := cmd.OutOrStdout().Write(out); err != nil {
			return err
		}
	}
	if len(conflicts) == 0 {
		return nil
	}
	for _, c := range conflicts {
		fmt.Fprintln(cmd.OutOrStdout(), c)
	}
	return &xmlExitError{Code: 3, Err: fmt.Errorf("xml merge: %d conflicts", len(conflicts))}
}
