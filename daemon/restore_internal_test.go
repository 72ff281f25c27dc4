package daemon

import (
	"strings"
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

// restoreOf puts back what an edit changed: the previous attribute value,
// the removal of an attribute the edit added, the previous text; nothing
// when the edit changed nothing; a reason when it cannot be rolled back.
func TestRestoreOf(t *testing.T) {
	doc, err := manifest.ParseDocument([]byte("<instance name=\"a\">\n  <app name=\"web\" version=\"1.0.0\"/>\n  <owner>team-a</owner>\n</instance>\n"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		ed      manifest.Edit
		want    manifest.Edit
		ok      bool
		refused string
	}{
		{manifest.Edit{Op: manifest.OpSetAttr, Path: "/instance/app", Attr: "version", Value: "2.0.0"},
			manifest.Edit{Op: manifest.OpSetAttr, Path: "/instance/app", Attr: "version", Value: "1.0.0"}, true, ""},
		{manifest.Edit{Op: manifest.OpSetAttr, Path: "/instance/app", Attr: "canary", Value: "yes"},
			manifest.Edit{Op: manifest.OpRemoveAttr, Path: "/instance/app", Attr: "canary"}, true, ""},
		{manifest.Edit{Op: manifest.OpSetText, Path: "/instance/owner", Value: "team-b"},
			manifest.Edit{Op: manifest.OpSetText, Path: "/instance/owner", Value: "team-a"}, true, ""},
		{manifest.Edit{Op: manifest.OpSetAttr, Path: "/instance/app", Attr: "version", Value: "1.0.0"}, manifest.Edit{}, false, ""},
		{manifest.Edit{Op: manifest.OpRemove, Path: "/instance/owner"}, manifest.Edit{}, false, "cannot be rolled back"},
		{manifest.Edit{Op: manifest.OpSetAttr, Path: "/instance/db", Attr: "size", Value: "big"}, manifest.Edit{}, false, "/instance/db@size"},
	}
	for _, c := range cases {
		re, ok, why := restoreOf(doc, c.ed)
		if ok != c.ok || (c.ok && re.Edit != c.want) || (c.ok && re.Expect != c.ed.Value) || (c.refused == "") != (why == "") || !strings.Contains(why, c.refused) {
			t.Errorf("%s: got %+v %v %q, want %+v %v %q", c.ed.String(), re, ok, why, c.want, c.ok, c.refused)
		}
	}
}
