// Package sshtest starts a real OpenSSH server (sshd) on 127.0.0.1 for tests of the ssh://
// transport, as net/http/httptest starts an HTTP server: generated host and client keys, its
// own sshd_config and authorized_keys in a directory of the test's, a free port, and a log
// file written by sshd itself. The server serves git-upload-pack and git-receive-pack of any
// repository by absolute path, to the one authorized client key.
//
// It is for tests only: the syncer's SSH tests and the integration scenarios' sshd command
// import it; product code never does.
//
// # Caveats
//
// sshd must be installed at [DefaultSSHD] (or the path in [Options]) and ssh-keygen in PATH;
// [Require] and [Condition] skip the tests that need them when they are not, unless
// CI_REQUIRE_SSHD=1, which makes a missing one a failure (.ci/run installs openssh-server).
// Running as root, sshd needs /run/sshd, which the server creates.
//
// A [Server]'s Run and Stop are not safe for concurrent use; Log, WaitLog and Sessions are.
package sshtest
