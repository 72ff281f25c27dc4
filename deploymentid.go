package deployer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// MaxDeploymentID bounds a client-chosen deployment id (DeployRequest.ID).
const MaxDeploymentID = 128

var (
	deploymentIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	// sequenceID is the form of the ids a daemon gives itself (d and a
	// sequence number, d000000000000042): a client's id never takes it.
	sequenceID = regexp.MustCompile(`^d[0-9]+$`)
)

// CheckDeploymentID checks a client-chosen deployment id: a letter or a
// digit, then up to 127 letters, digits, '.', '_', ':' or '-', and not of
// the daemon's own form (d and digits).
func CheckDeploymentID(id string) error {
	switch {
	case !deploymentIDPattern.MatchString(id):
		return fmt.Errorf("deployment id %q: want a letter or digit, then up to %d letters, digits, '.', '_', ':' or '-'", Escape(id), MaxDeploymentID-1)
	case sequenceID.MatchString(id):
		return fmt.Errorf("deployment id %q has the form of the ids the daemon gives itself (d and digits): choose another", id)
	}
	return nil
}

// HostDeploymentID is the id of the deployment a rollout asks a host for:
// "<rollout>.<host>", the same at every submission, so that a host
// creates it once however many times it is asked. A character a
// deployment id cannot hold is replaced by '_', a rollout id that does
// not start with a letter or a digit gets an "r" first, and the id is cut
// to MaxDeploymentID bytes; whenever any of this happened the id ends
// with '-' and 12 hex digits of the SHA-256 of rollout and host, so that
// two rollouts or hosts never share an id by it.
func HostDeploymentID(rollout, host string) string {
	raw := rollout + "." + host
	var b strings.Builder
	changed := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if isIDByte(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
			changed = true
		}
	}
	id := b.String()
	if c := id[0]; !isAlnum(c) {
		id, changed = "r"+id, true
	}
	if !changed && len(id) <= MaxDeploymentID {
		return id
	}
	sum := sha256.Sum256([]byte(rollout + "\x00" + host))
	suffix := "-" + hex.EncodeToString(sum[:6])
	if len(id) > MaxDeploymentID-len(suffix) {
		id = id[:MaxDeploymentID-len(suffix)]
	}
	return id + suffix
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isIDByte(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == ':' || c == '-'
}
