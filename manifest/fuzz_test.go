package manifest_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

// FuzzParse checks the tokenizer and splicer: whatever parses keeps its
// bytes, and adding then removing an attribute gives them back.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`<a x="1"><b>t</b><!-- c --><![CDATA[d]]></a>`))
	f.Add([]byte("\xef\xbb\xbf<?xml version='1.1'?>\r\n<!DOCTYPE a [<!ENTITY e \"v\">]>\r\n<a>&e;&#10;</a>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := manifest.ParseDocument(data)
		if err != nil {
			var se *manifest.SyntaxError
			if !errors.As(err, &se) || se.Line < 1 || se.Col < 1 {
				t.Fatalf("error without position: %v", err)
			}
			return
		}
		if !bytes.Equal(doc.Bytes(), data) {
			t.Fatal("round trip changed the bytes")
		}
		root := "/" + doc.RootName()
		if n, _ := doc.Count(root); n != 1 {
			return // a root name etree paths cannot express
		}
		added, err := doc.Apply(manifest.Edit{Op: manifest.OpSetAttr, Path: root, Attr: "fuzz-added", Value: "v<&\"'\n"})
		if err != nil {
			t.Fatalf("set attr: %v", err)
		}
		back, err := manifest.Apply(added, []manifest.Edit{{Op: manifest.OpRemoveAttr, Path: root, Attr: "fuzz-added"}})
		if err != nil {
			t.Fatalf("remove attr: %v", err)
		}
		if !bytes.Equal(back, data) {
			t.Fatalf("add+remove attribute changed the bytes:\n%q\n%q", data, back)
		}
	})
}

// FuzzApply applies each kind of edit with an arbitrary value to an arbitrary
// element and checks that the result parses and reads back the value, and
// that the inverse of a remove gives back the bytes.
func FuzzApply(f *testing.F) {
	f.Add([]byte("<i name=\"v\">\n  <app name=\"web\" version=\"1\"/>\n  <t>x</t>\n</i>\n"), uint8(1), uint8(0), "4.3.0")
	f.Add([]byte("<i>\r\n\t<t><![CDATA[a]]></t>\r\n</i>"), uint8(1), uint8(2), "]]>\r\n")
	f.Fuzz(func(t *testing.T, data []byte, which, op uint8, value string) {
		doc, err := manifest.ParseDocument(data)
		if err != nil {
			return
		}
		elems := manifest.Elements(doc, manifest.DiffOptions{})
		e := elems[int(which)%len(elems)]
		if n, _ := doc.Count(e.Path); n != 1 {
			return
		}
		var edit manifest.Edit
		switch op % 4 {
		case 0:
			edit = manifest.Edit{Op: manifest.OpSetAttr, Path: e.Path, Attr: "v", Value: value}
		case 1:
			edit = manifest.Edit{Op: manifest.OpSetText, Path: e.Path, Value: value}
		case 2:
			edit = manifest.Edit{Op: manifest.OpInsert, Path: e.Path, XML: "<n v='1'>\n<m/>\n</n>", Index: int(which % 3)}
		case 3:
			edit = manifest.Edit{Op: manifest.OpRemove, Path: e.Path}
		}
		out, err := manifest.Apply(data, []manifest.Edit{edit})
		if err != nil {
			if errors.Is(err, manifest.ErrBadEdit) {
				return
			}
			t.Fatalf("%s: %v", edit, err)
		}
		res, err := manifest.ParseDocument(out)
		if err != nil {
			t.Fatalf("%s: result does not parse: %v\n%q", edit, err, out)
		}
		switch edit.Op {
		case manifest.OpRemove:
			inv, err := manifest.Invert(data, edit)
			if errors.Is(err, manifest.ErrBadEdit) {
				return // the remove joined two words of text
			}
			if err != nil {
				t.Fatalf("invert %s: %v", edit, err)
			}
			back, err := manifest.Apply(out, []manifest.Edit{inv})
			if err != nil || !bytes.Equal(back, data) {
				t.Fatalf("%s then %+v: %v\n%q\n%q", edit, inv, err, data, back)
			}
		case manifest.OpSetAttr:
			if got, ok, err := res.Attr(e.Path, "v"); err != nil || !ok || got != value {
				t.Fatalf("%s: reads back %q, %v, %v", edit, got, ok, err)
			}
		case manifest.OpSetText:
			if got, err := res.Text(e.Path); err != nil || got != value && !(isBlank(got) && isBlank(value)) {
				t.Fatalf("%s: reads back %q, %v\n%q", edit, got, err, out)
			}
		}
	})
}

func isBlank(s string) bool { return len(bytes.TrimSpace([]byte(s))) == 0 }

// FuzzMerge checks Merge on arbitrary documents: an unchanged side gives the
// other side back, and a clean merge parses.
func FuzzMerge(f *testing.F) {
	f.Add([]byte(`<i><a name="x" v="1"/><b>t</b></i>`), []byte(`<i><a name="x" v="2"/><b>t</b></i>`), []byte(`<i><b>u</b><a name="x" v="1"/></i>`))
	f.Add([]byte(`<i><c/><c/></i>`), []byte(`<i><c/></i>`), []byte(`<i><c k="1"/><c/><c/></i>`))
	f.Fuzz(func(t *testing.T, base, ours, theirs []byte) {
		out, conflicts, err := manifest.Merge(base, ours, theirs, manifest.DiffOptions{})
		if err != nil {
			return
		}
		if _, err := manifest.ParseDocument(out); err != nil {
			t.Fatalf("merged result does not parse: %v\n%q", err, out)
		}
		same, conflicts2, err := manifest.Merge(base, base, theirs, manifest.DiffOptions{})
		if err != nil || len(conflicts2) > 0 || !bytes.Equal(same, theirs) {
			t.Fatalf("ours unchanged: got %q, %v, %v; want theirs back", same, conflicts2, err)
		}
		if len(conflicts) > 0 {
			return
		}
		mine, conflicts3, err := manifest.Merge(base, ours, base, manifest.DiffOptions{})
		if err != nil || len(conflicts3) > 0 {
			t.Fatalf("theirs unchanged: %v, %v", conflicts3, err)
		}
		if es, err := manifest.Diff(ours, mine, manifest.DiffOptions{}); err != nil || len(es) > 0 {
			t.Fatalf("theirs unchanged: result differs from ours: %v %v\n%q", es, err, mine)
		}
	})
}
