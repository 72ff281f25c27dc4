// Package executor provides step execution: it runs an instance's manifest
// steps as real processes, in dependency order, with timeouts, retries,
// outputs that flow to later steps, a writes policy, and bucketed runs of many
// instances under a failure budget.
//
// A step runs as argv (never through a shell) in its own process group, with
// the repository root as working directory and a clean environment made of the
// DEPLOYER_* contract, an allow-list of host variables and the secrets of the
// repository's env files. Every attempt is reported with its exact inputs, so
// that it can be exported as a scenario and run again elsewhere.
//
// # Caveats
//
// Secret values are replaced by "[redacted NAME]" wherever the executor records
// or logs text: step output, outputs, reasons. Any non-empty value is
// redacted, however short.
//
// When a step's leading process exits, whatever is left of its process group
// is sent SIGKILL at once. A grandchild that leaves the group (setsid) is out of
// reach.
//
// The default writes check (used when Job.CheckWrites is nil) compares lstat
// data of every file under the repository root (except .git) before and after
// each attempt, hashing files whose modification time is too recent to be
// trusted, as git does. When several instances run at once in one checkout,
// a change to another in-flight instance's file cannot be attributed and is
// ignored.
package executor
