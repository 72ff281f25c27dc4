package manifest_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

// TestInvert checks that remove followed by the inverse gives back the
// bytes, on layouts where an inferred insert cannot: blank lines, comments
// on both sides, CRLF next to LF, inline elements, words of text, the only
// child, and a parent left without children.
func TestInvert(t *testing.T) {
	cases := []struct{ name, doc, path string }{
		{"blank line after", "<a>\n  <b/>\n  <c/>\n\n  <d/>\n</a>\n", "/a/c"},
		{"blank line before, last", "<a>\n  <b/>\n\n\n  <c/>\n</a>", "/a/c"},
		{"comments on both sides", "<a>\n  <b/>\n  <!-- x -->\n  <c/>\n  <!-- y -->\n  <d/>\n</a>", "/a/c"},
		{"comment after, same line", "<a>\n  <c/> <!-- the c -->\n  <d/>\n</a>", "/a/c"},
		{"mixed line endings", "<a>\r\n\t<b/>\n\t<c/>\r\n</a>", "/a/b"},
		{"inline", "<a><b/><c x='1'/><!--k--><d/></a>", "/a/c"},
		{"words of text", "<a>foo <c/> bar baz</a>", "/a/c"},
		{"entity reference before", "<!DOCTYPE a [<!ENTITY e \"v\">]>\n<a>\n  &e;\n  <c/>\n</a>", "/a/c"},
		{"only child", "<a>\n    <c>t</c>\n</a>", "/a/c"},
		{"only child, glued", "<a><c/></a>", "/a/c"},
		{"nested keyed", "<a>\n  <app name=\"web\">\n    <v/>\n\n  </app>\n</a>", "/a/app/v"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rm := manifest.Edit{Op: manifest.OpRemove, Path: c.path}
			inv, err := manifest.Invert([]byte(c.doc), rm)
			if err != nil {
				t.Fatal(err)
			}
			if inv.Op != manifest.OpInsert || inv.Node < 1 || inv.Index < 1 || strings.TrimSpace(inv.Lead+inv.Trail) != "" {
				t.Fatalf("inverse %+v", inv)
			}
			removed, err := manifest.Apply([]byte(c.doc), []manifest.Edit{rm})
			if err != nil {
				t.Fatal(err)
			}
			if string(removed) == c.doc {
				t.Fatal("remove changed nothing")
			}
			back, err := manifest.Apply(removed, []manifest.Edit{inv})
			if err != nil {
				t.Fatalf("%+v: %v", inv, err)
			}
			if string(back) != c.doc {
				t.Fatalf("inverse %+v\ngot  %q\nwant %q", inv, back, c.doc)
			}
		})
	}
}

func TestInvertRefuses(t *testing.T) {
	cases := []struct {
		name, doc string
		edit      manifest.Edit
	}{
		{"not a remove", "<a><b/></a>", manifest.Edit{Op: manifest.OpSetAttr, Path: "/a/b", Attr: "x", Value: "1"}},
		{"root", "<a><b/></a>", manifest.Edit{Op: manifest.OpRemove, Path: "/a"}},
		{"remove joins two words", "<a>foo<b/>bar</a>", manifest.Edit{Op: manifest.OpRemove, Path: "/a/b"}},
		{"remove joins two words across a space", "<a>foo <b/>bar</a>", manifest.Edit{Op: manifest.OpRemove, Path: "/a/b"}},
	}
	for _, c := range cases {
		if _, err := manifest.Invert([]byte(c.doc), c.edit); !errors.Is(err, manifest.ErrBadEdit) {
			t.Errorf("%s: got %v, want ErrBadEdit", c.name, err)
		}
	}
	var te *manifest.TargetError
	if _, err := manifest.Invert([]byte("<a/>"), manifest.Edit{Op: manifest.OpRemove, Path: "/a/b"}); !errors.As(err, &te) {
		t.Errorf("missing element: got %v, want *TargetError", err)
	}
}

// TestExactInsertValidation checks that Lead and Trail cannot carry markup
// and that the exact fields are refused where they do not apply.
func TestExactInsertValidation(t *testing.T) {
	doc := []byte("<a>\n  <b/>\n  <!-- c -->\n  <d/>\n</a>\n")
	bad := []struct {
		name string
		edit manifest.Edit
	}{
		{"markup in lead", manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<x/>", Index: 2, Node: 2, Lead: "\n  <evil/>"}},
		{"text in trail", manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<x/>", Index: 2, Node: 2, Trail: "x"}},
		{"non-breaking space in lead", manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<x/>", Index: 2, Node: 2, Lead: "\u00a0"}},
		{"form feed in lead", manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<x/>", Index: 2, Node: 2, Lead: "\f"}},
		{"lead without node", manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<x/>", Lead: "\n"}},
		{"lead on set-attr", manifest.Edit{Op: manifest.OpSetAttr, Path: "/a/b", Attr: "v", Value: "1", Lead: " "}},
		{"node on remove", manifest.Edit{Op: manifest.OpRemove, Path: "/a/b", Node: 1}},
		{"negative node", manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<x/>", Node: -1}},
		{"node out of range", manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<x/>", Node: 5}},
		{"node disagrees with index", manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<x/>", Index: 2, Node: 4}},
		{"append before an element", manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<x/>", Node: 1}},
		{"two elements", manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<x/><y/>", Index: 2, Node: 2}},
		{"space around the XML", manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: " <x/>", Index: 2, Node: 2}},
		{"markup after the element", manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<x/><!--y-->", Index: 2, Node: 2}},
	}
	for _, c := range bad {
		if _, err := manifest.Apply(doc, []manifest.Edit{c.edit}); !errors.Is(err, manifest.ErrBadEdit) {
			t.Errorf("%s: got %v, want ErrBadEdit", c.name, err)
		}
	}
	// Between the comment and <d/>, with the given whitespace, verbatim.
	out, err := manifest.Apply(doc, []manifest.Edit{{Op: manifest.OpInsert, Path: "/a", XML: "<x\r\n/>", Index: 2, Node: 3, Lead: "\n\n\t", Trail: " "}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "<a>\n  <b/>\n  <!-- c -->\n\n\t<x\r\n/> <d/>\n</a>\n"; string(out) != want {
		t.Errorf("exact insert:\ngot  %q\nwant %q", out, want)
	}
	// Into a self-closing parent.
	out, err = manifest.Apply([]byte("<a><b/></a>"), []manifest.Edit{{Op: manifest.OpInsert, Path: "/a/b", XML: "<x/>", Node: 1, Lead: "\n"}})
	if err != nil || string(out) != "<a><b>\n<x/></b></a>" {
		t.Errorf("exact insert into <b/>: %q, %v", out, err)
	}
}

// TestExactInsertJSON checks that the new fields are left out of the JSON of
// ordinary edits and survive a round trip.
func TestExactInsertJSON(t *testing.T) {
	js, err := json.Marshal(manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<x/>", Index: 2})
	if err != nil || string(js) != `{"op":"insert","path":"/a","xml":"\u003cx/\u003e","index":2}` {
		t.Errorf("ordinary insert: %s, %v", js, err)
	}
	e := manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<x/>", Index: 2, Node: 3, Lead: "\r\n\t", Trail: "\n"}
	js, err = json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var back manifest.Edit
	if err := json.Unmarshal(js, &back); err != nil || back != e {
		t.Errorf("round trip: %+v, %v (%s)", back, err, js)
	}
}
