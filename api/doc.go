// Package api provides the daemon's versioned HTTP interface: the JSON
// types of the /v1 contract, the server that serves them on a Unix socket
// (and optionally TCP with a bearer token), and the client the CLI uses.
//
// The server never touches the state file itself; it asks a Backend. The
// daemon implements the domain's deployer.Service, which ServiceBackend
// serves as a Backend, turning the domain's runs and step results into
// their wire form; a deployer.Error's code is the answer's error kind.
package api
