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
// or logs text: step output, outputs, reasons. A value shorter than
// MinRedactLen (4) bytes is not redacted inside a text (a secret of "0" would
// change every date and count): only a recorded output value that is exactly
// the secret is replaced.
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
// mtime is too recent to be trusted.
//
// Neither inotify nor lstat data say which process changed a file. When
// several instances run at once in one checkout (RunJobs), a change is
// blamed on an attempt only when no other attempt was in flight during its
// window; otherwise the attempt's result is inconclusive: it is reported
// (failed, with the reason), Job.AfterAttempt rolls the change back, the
// other attempts in flight count the files as changed too (so a rollback
// never hides a write from the attempt that made it), and the attempt runs
// again with the checkout to itself, which decides; this redo is not one of
// the step's retries. So a forbidden write fails the step that made it,
// never a neighbour; the price, paid only when such a write happens, is
// that the neighbours in flight run once more. A step that may write its
// instance file claims that file for its window: overlapping attempts do
// not count its changes as theirs.
//
// DEPLOYER_INSTANCE_FILE is the instance file as a slash path relative to the
// repository root (the working directory), so that records are the same on
// every host.
package executor
