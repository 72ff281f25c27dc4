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
// The default writes check (used when Job.CheckWrites is nil) watches the
// repository root (.git excluded) with inotify for as long as a RunJob,
// RunJobs or RunScenario call lasts, so its cost follows what changes rather
// than the size of the tree; an attempt's changes are those recorded between
// two barriers taken before it starts and after it ends. A file that did not
// exist before an attempt and does not exist after it (a temporary file) is
// not a change. When the queue overflows (a step changing more files than the
// kernel queues) the step fails, as its writes cannot be known. When inotify
// is unavailable, the check compares lstat data (size, mtime, ctime, mode,
// inode) of every file before and after each attempt, hashing files whose
// mtime is too recent to be trusted. When several instances run at once in
// one checkout, a change to another in-flight instance's file cannot be
// attributed and is ignored; any other change made during an attempt is
// blamed on it, whoever made it.
//
// DEPLOYER_INSTANCE_FILE is the instance file as a slash path relative to the
// repository root (the working directory), so that records are the same on
// every host.
package executor
