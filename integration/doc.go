// Package integration holds the scenario tests: testscript files in
// testdata/ that build the real deployer binary, start real git servers on
// 127.0.0.1 (git daemon and git http-backend), run the daemon in the
// background and play the other people with the git CLI.
package integration
