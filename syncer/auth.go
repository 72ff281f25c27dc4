package syncer

import (
	"fmt"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// AuthMethod is the credentials of a remote (Options.Auth): nil for none,
// or one made by SSHKeyAuth or BasicAuth. Its Name says which kind it is.
type AuthMethod = transport.AuthMethod

// SSHKeyAuth is SSH public-key authentication as user (default "git") with
// the private key in keyFile (no passphrase). The server's host key is
// checked against knownHostsFile, or, when it is empty, against the
// default known_hosts files (SSH_KNOWN_HOSTS, ~/.ssh/known_hosts,
// /etc/ssh/ssh_known_hosts); a host key that is not there fails the
// connection as auth-failed. Errors name the file, never the key.
func SSHKeyAuth(user, keyFile, knownHostsFile string) (AuthMethod, error) {
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeysFromFile(user, keyFile, "")
	if err != nil {
		return nil, fmt.Errorf("ssh key %s: %w", keyFile, err)
	}
	if knownHostsFile != "" {
		cb, err := gitssh.NewKnownHostsCallback(knownHostsFile)
		if err != nil {
			return nil, fmt.Errorf("known hosts %s: %w", knownHostsFile, err)
		}
		keys.HostKeyCallback = cb
	}
	return keys, nil
}

// BasicAuth is HTTP basic authentication (a user and a password or token).
func BasicAuth(user, password string) AuthMethod {
	return &githttp.BasicAuth{Username: user, Password: password}
}
