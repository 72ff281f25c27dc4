package manifest_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

func TestApply(t *testing.T) {
	const inst = "<?xml version=\"1.0\"?>\n<!-- customer -->\n<instance name=\"viatris\" tier='gold'>\n  <app name=\"web\" version=\"4.2.1\"/>\n  <app name=\"db\"\n       version=\"13\"/>\n  <owner>ops &amp; sre</owner>\n  <notes><![CDATA[a < b]]></notes>\n  <empty/>\n</instance>\n"
	cases := []struct {
		name string
		in   string
		edit manifest.Edit
		want string
	}{
		{"set attr keeps quotes and everything else", inst,
			manifest.Edit{Op: manifest.OpSetAttr, Path: "/instance/app[@name='web']", Attr: "version", Value: "4.3.0"},
			strings.Replace(inst, `version="4.2.1"`, `version="4.3.0"`, 1)},
		{"set attr in single quotes escapes apostrophe", inst,
			manifest.Edit{Op: manifest.OpSetAttr, Path: "/instance", Attr: "tier", Value: "it's \"gold\""},
			strings.Replace(inst, `tier='gold'`, `tier='it&apos;s "gold"'`, 1)},
		{"set attr escapes markup and line breaks", inst,
			manifest.Edit{Op: manifest.OpSetAttr, Path: "/instance/app[@name='web']", Attr: "version", Value: "a<b&c\n\r\td"},
			strings.Replace(inst, `version="4.2.1"`, `version="a&lt;b&amp;c&#10;&#13;&#9;d"`, 1)},
		{"set attr adds a new attribute", inst,
			manifest.Edit{Op: manifest.OpSetAttr, Path: "/instance/app[@name='web']", Attr: "replicas", Value: "3"},
			strings.Replace(inst, `version="4.2.1"/>`, `version="4.2.1" replicas="3"/>`, 1)},
		{"new attribute follows a one-per-line layout", inst,
			manifest.Edit{Op: manifest.OpSetAttr, Path: "/instance/app[@name='db']", Attr: "replicas", Value: "3"},
			strings.Replace(inst, "version=\"13\"/>", "version=\"13\"\n       replicas=\"3\"/>", 1)},
		{"new attribute takes the quote of the element's first attribute", inst,
			manifest.Edit{Op: manifest.OpSetAttr, Path: "/instance", Attr: "dc", Value: "fra1"},
			strings.Replace(inst, `tier='gold'`, `tier='gold' dc="fra1"`, 1)},
		{"set attr to its value changes nothing", inst,
			manifest.Edit{Op: manifest.OpSetAttr, Path: "/instance", Attr: "tier", Value: "gold"}, inst},
		{"remove attr", inst,
			manifest.Edit{Op: manifest.OpRemoveAttr, Path: "/instance/app[@name='db']", Attr: "version"},
			strings.Replace(inst, "\n       version=\"13\"/>", "/>", 1)},
		{"remove absent attr is a no-op", inst,
			manifest.Edit{Op: manifest.OpRemoveAttr, Path: "/instance/app[@name='db']", Attr: "nope"}, inst},
		{"set text escapes", inst,
			manifest.Edit{Op: manifest.OpSetText, Path: "/instance/owner", Value: "ops & sre <oncall>"},
			strings.Replace(inst, "ops &amp; sre", "ops &amp; sre &lt;oncall>", 1)},
		{"set text keeps CDATA", inst,
			manifest.Edit{Op: manifest.OpSetText, Path: "/instance/notes", Value: "a < c ]]> d"},
			strings.Replace(inst, "<![CDATA[a < b]]>", "<![CDATA[a < c ]]]]><![CDATA[> d]]>", 1)},
		{"set text on a self-closing element", inst,
			manifest.Edit{Op: manifest.OpSetText, Path: "/instance/empty", Value: "x"},
			strings.Replace(inst, "<empty/>", "<empty>x</empty>", 1)},
		{"insert before a sibling copies its indentation", inst,
			manifest.Edit{Op: manifest.OpInsert, Path: "/instance", Index: 2, XML: `<app name="cache"/>`},
			strings.Replace(inst, "  <app name=\"db\"", "  <app name=\"cache\"/>\n  <app name=\"db\"", 1)},
		{"insert appends after the last element", inst,
			manifest.Edit{Op: manifest.OpInsert, Path: "/instance", XML: `<app name="cache"/>`},
			strings.Replace(inst, "<empty/>\n", "<empty/>\n  <app name=\"cache\"/>\n", 1)},
		{"insert into a self-closing element", inst,
			manifest.Edit{Op: manifest.OpInsert, Path: "/instance/empty", XML: `<x/>`},
			strings.Replace(inst, "<empty/>", "<empty>\n    <x/>\n  </empty>", 1)},
		{"remove an element with its line", inst,
			manifest.Edit{Op: manifest.OpRemove, Path: "/instance/app[@name='db']"},
			strings.Replace(inst, "<app name=\"db\"\n       version=\"13\"/>\n  ", "", 1)},
		{"remove the last element", inst,
			manifest.Edit{Op: manifest.OpRemove, Path: "/instance/empty"},
			strings.Replace(inst, "\n  <empty/>", "", 1)},
		{"remove an inline element", "<a><b/> <c/></a>",
			manifest.Edit{Op: manifest.OpRemove, Path: "/a/c"}, "<a><b/></a>"},
		{"insert before a commented sibling", "<a>\n  <b/>\n  <!-- about c -->\n  <c/>\n</a>",
			manifest.Edit{Op: manifest.OpInsert, Path: "/a", Index: 2, XML: "<n/>"}, "<a>\n  <b/>\n  <n/>\n  <!-- about c -->\n  <c/>\n</a>"},
		{"CRLF document gets CRLF inserts", "<a>\r\n\t<b/>\r\n</a>\r\n",
			manifest.Edit{Op: manifest.OpInsert, Path: "/a", XML: "<c>\n</c>"}, "<a>\r\n\t<b/>\r\n\t<c>\r\n</c>\r\n</a>\r\n"},
		{"CRLF text edit", "<a>\r\n\t<b>x</b>\r\n</a>",
			manifest.Edit{Op: manifest.OpSetText, Path: "/a/b", Value: "1\n2"}, "<a>\r\n\t<b>1\r\n2</b>\r\n</a>"},
		{"CR-only document", "<a>\r<b v=\"1\"/>\r</a>",
			manifest.Edit{Op: manifest.OpSetAttr, Path: "/a/b", Attr: "v", Value: "2"}, "<a>\r<b v=\"2\"/>\r</a>"},
		{"XML 1.1 with BOM", "\xef\xbb\xbf<?xml version='1.1'?><a v='1'/>",
			manifest.Edit{Op: manifest.OpSetAttr, Path: "/a", Attr: "v", Value: "2"}, "\xef\xbb\xbf<?xml version='1.1'?><a v='2'/>"},
		{"DTD entities stay unexpanded", "<!DOCTYPE a [<!ENTITY ver \"1.0\">]>\n<a><b v=\"&ver;-x\">&ver;</b><c v=\"1\"/></a>",
			manifest.Edit{Op: manifest.OpSetAttr, Path: "/a/c", Attr: "v", Value: "2"}, "<!DOCTYPE a [<!ENTITY ver \"1.0\">]>\n<a><b v=\"&ver;-x\">&ver;</b><c v=\"2\"/></a>"},
		{"only the changed part of a value is rewritten", "<a v=\"x&#10;y&amp;z\"/>",
			manifest.Edit{Op: manifest.OpSetAttr, Path: "/a", Attr: "v", Value: "x\ny&w"}, "<a v=\"x&#10;y&amp;w\"/>"},
		{"character references survive around a text edit", "<a>&#13;&#10;tail</a>",
			manifest.Edit{Op: manifest.OpSetText, Path: "/a", Value: "\r\nTAIL"}, "<a>&#13;&#10;TAIL</a>"},
		{"descendant path goes through etree", inst,
			manifest.Edit{Op: manifest.OpSetAttr, Path: "//app[@name='db']", Attr: "version", Value: "14"},
			strings.Replace(inst, `version="13"`, `version="14"`, 1)},
		{"namespaced element and attribute", "<r xmlns:x=\"u\"><x:e x:v=\"1\"/></r>",
			manifest.Edit{Op: manifest.OpSetAttr, Path: "/r/x:e", Attr: "x:v", Value: "2"}, "<r xmlns:x=\"u\"><x:e x:v=\"2\"/></r>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := manifest.Apply([]byte(tc.in), []manifest.Edit{tc.edit})
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	const doc = `<i><app name="web"/><app name="web"/><leaf><x/></leaf></i>`
	cases := []struct {
		name    string
		edit    manifest.Edit
		is      error
		matched int
		msg     string
	}{
		{"no match", manifest.Edit{Op: manifest.OpSetAttr, Path: "/i/app[@name='db']", Attr: "v", Value: "1"}, manifest.ErrNoTarget, 0, "path /i/app[@name='db'] matches no element"},
		{"two matches", manifest.Edit{Op: manifest.OpRemove, Path: "/i/app"}, manifest.ErrAmbiguousTarget, 2, "path /i/app matches 2 elements, want exactly one"},
		{"bad path", manifest.Edit{Op: manifest.OpRemove, Path: "/i/app[@name='web'"}, manifest.ErrBadEdit, -1, ""},
		{"bad op", manifest.Edit{Op: "rename", Path: "/i"}, manifest.ErrBadEdit, -1, ""},
		{"bad attr name", manifest.Edit{Op: manifest.OpSetAttr, Path: "/i", Attr: "a b"}, manifest.ErrBadEdit, -1, ""},
		{"text on element with children", manifest.Edit{Op: manifest.OpSetText, Path: "/i/leaf", Value: "x"}, manifest.ErrBadEdit, -1, ""},
		{"insert two elements", manifest.Edit{Op: manifest.OpInsert, Path: "/i/leaf", XML: "<a/><b/>"}, manifest.ErrBadEdit, -1, ""},
		{"insert malformed", manifest.Edit{Op: manifest.OpInsert, Path: "/i/leaf", XML: "<a>"}, manifest.ErrBadEdit, -1, ""},
		{"insert index out of range", manifest.Edit{Op: manifest.OpInsert, Path: "/i/leaf", XML: "<a/>", Index: 3}, manifest.ErrBadEdit, -1, ""},
		{"remove root", manifest.Edit{Op: manifest.OpRemove, Path: "/i"}, manifest.ErrBadEdit, -1, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := manifest.Apply([]byte(doc), []manifest.Edit{tc.edit})
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want %v", err, tc.is)
			}
			if tc.matched < 0 {
				return
			}
			var te *manifest.TargetError
			if !errors.As(err, &te) || te.Matched != tc.matched || te.Path != tc.edit.Path {
				t.Fatalf("got %#v, want TargetError{Path: %q, Matched: %d}", te, tc.edit.Path, tc.matched)
			}
			if te.Error() != tc.msg {
				t.Errorf("got %q, want %q", te.Error(), tc.msg)
			}
		})
	}
	if _, err := manifest.Apply([]byte("<a>"), []manifest.Edit{{Op: manifest.OpRemove, Path: "/a"}}); !errors.Is(err, manifest.ErrSyntax) {
		t.Errorf("malformed document: got %v, want ErrSyntax", err)
	}
}

func TestEditJSONAndString(t *testing.T) {
	edits := []manifest.Edit{
		{Op: manifest.OpSetAttr, Path: "/instance/app[@name='web']", Attr: "version", Value: "4.3.0"},
		{Op: manifest.OpRemoveAttr, Path: "/instance", Attr: "tier"},
		{Op: manifest.OpSetText, Path: "/instance/owner", Value: "ops team"},
		{Op: manifest.OpInsert, Path: "/instance", XML: "<app name=\"cache\"\n  version=\"1\"/>", Index: 2},
		{Op: manifest.OpRemove, Path: "/instance/app[2]"},
	}
	want := []string{
		"set /instance/app[@name='web']@version 4.3.0",
		"remove /instance@tier",
		`set /instance/owner text "ops team"`,
		`insert /instance[2] <app name="cache" version="1"/>`,
		"remove /instance/app[2]",
	}
	for i, e := range edits {
		if got := e.String(); got != want[i] {
			t.Errorf("String: got %q, want %q", got, want[i])
		}
	}
	data, err := json.Marshal(edits)
	if err != nil {
		t.Fatal(err)
	}
	var back []manifest.Edit
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	for i := range edits {
		if back[i] != edits[i] {
			t.Errorf("JSON round trip: got %+v, want %+v", back[i], edits[i])
		}
	}
	if !strings.Contains(string(data), `"op":"set-attr"`) {
		t.Errorf("JSON: got %s, want op names", data)
	}
}

func TestSyntaxErrorPositions(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"unclosed", "<a>\n  <b>\n</a>", "3:1: end tag </a> does not match <b> opened at line 2, column 3"},
		{"bad entity", "<a>\n x & y</a>", "2:4: malformed reference"},
		{"lt in attribute", "<a v=\"<\"/>", "1:7: '<' in the value of attribute"},
		{"duplicate attribute", "<a v=\"1\"\n   v=\"2\"/>", "2:4: duplicate attribute \"v\""},
		{"unquoted", "<a v=1/>", "1:6: value of attribute \"v\" is not quoted"},
		{"two roots", "<a/><b/>", "1:5: second root element <b>"},
		{"text after root", "<a/>x", "1:5: text outside the root element"},
		{"empty", "", "1:1: no root element"},
		{"decl not first", "\n<?xml version=\"1.0\"?><a/>", "2:1: XML declaration not at the start"},
		{"unterminated comment", "<a><!-- x</a>", "1:4: unterminated comment"},
		{"CRLF lines", "<a>\r\n<b>\r\n</a>", "3:1: end tag </a> does not match <b>"},
		{"columns count characters", "<a>\n  é <</a>", "2:5: '<' not followed by a name"},
		{"UTF-16", "\xff\xfe<\x00a\x00/\x00>\x00", "1:1: UTF-16 documents are not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := manifest.ParseDocument([]byte(tc.in))
			var se *manifest.SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want *SyntaxError", err)
			}
			if !strings.HasPrefix(se.Error(), tc.want) {
				t.Errorf("got %q, want prefix %q", se.Error(), tc.want)
			}
		})
	}
}
