package daemon

import (
	"reflect"
	"testing"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

// An instance's store record holds every field of deployer.DeploymentInstance but its name
// and status (the record's key and status): a field added to one and not the other would be
// lost at the first save.
func TestInstanceDetailCoversDeploymentInstance(t *testing.T) {
	di, id := reflect.TypeFor[deployer.DeploymentInstance](), reflect.TypeFor[instanceDetail]()
	for i := 0; i < di.NumField(); i++ {
		f := di.Field(i)
		if f.Name == "Name" || f.Name == "Status" {
			continue
		}
		g, ok := id.FieldByName(f.Name)
		if !ok || g.Type != f.Type || g.Tag != f.Tag {
			t.Errorf("instanceDetail lacks %s %s %s (has %v)", f.Name, f.Type, f.Tag, g)
		}
	}
	in := deployer.DeploymentInstance{Name: "a", File: "instances/a.xml", Status: deployer.InstanceFailed, Reason: "r", Step: "s",
		OutputTail: "o", Commit: "c", Note: "n"}
	var rec store.Deployment
	if err := encodeSpec(&rec, deploymentSpec{Details: map[string]deployer.DeploymentInstance{"a": in}}); err != nil {
		t.Fatal(err)
	}
	spec, stored, err := decodeSpec(rec)
	if err != nil || spec.Details["a"] != in || stored["a"] != in {
		t.Fatalf("round trip: %+v %+v %v, want %+v", spec.Details["a"], stored["a"], err, in)
	}
}
