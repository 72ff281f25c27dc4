package manifest_test

import (
	"strings"
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

func TestParseEditsPredicates(t *testing.T) {
	edits, err := manifest.ParseEdits(manifest.EditSpec{
		Set:  []string{"/instance/app[@name='worker']@version=1.10.0", "/instance@note=a=b"},
		Text: []string{"/instance/owner[@k='x=y']=team-a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []manifest.Edit{
		{Op: manifest.OpSetAttr, Path: "/instance/app[@name='worker']", Attr: "version", Value: "1.10.0"},
		{Op: manifest.OpSetAttr, Path: "/instance", Attr: "note", Value: "a=b"},
		{Op: manifest.OpSetText, Path: "/instance/owner[@k='x=y']", Value: "team-a"},
	}
	if len(edits) != len(want) {
		t.Fatalf("edits %+v", edits)
	}
	for i := range want {
		if edits[i] != want[i] {
			t.Errorf("edit %d: %+v, want %+v", i, edits[i], want[i])
		}
	}
}

func TestParseEditsRefusals(t *testing.T) {
	for _, c := range []struct {
		spec manifest.EditSpec
		want string
	}{
		{manifest.EditSpec{Set: []string{"/instance/app@version"}}, "want PATH@ATTR=VALUE"},
		{manifest.EditSpec{Set: []string{"instance/app@version=1"}}, "must start with /"},
		{manifest.EditSpec{Set: []string{"/instance/app[@name='w'@version=1"}}, "want PATH@ATTR=VALUE"},
		{manifest.EditSpec{Text: []string{"/instance/owner"}}, "want PATH=VALUE"},
		{manifest.EditSpec{Set: []string{"/instance/app[@name='w']]@version=1"}}, "--set"},
	} {
		_, err := manifest.ParseEdits(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.spec, err, c.want)
		}
	}
}
