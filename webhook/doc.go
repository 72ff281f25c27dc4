// Package webhook provides the push-webhook endpoint of the daemon: it
// verifies and parses push events from GitHub, GitLab, Gitea and a generic
// HMAC-signed sender, and decides which tracked repos they trigger.
//
// The contract (headers, status codes, matching rules) is the "Webhooks"
// section of the design. In short:
//
//   - GitHub signs with "X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>".
//   - GitLab sends the shared secret itself in "X-Gitlab-Token".
//   - Gitea signs with "X-Gitea-Signature: <hex HMAC-SHA256 of the body>".
//   - The generic sender signs {"repo": "NAME", "ref": "refs/heads/BRANCH"}
//     with "X-Deployer-Signature: sha256=<hex>" and names the tracked repo
//     directly.
//
// Every comparison with the secret is constant-time, and the signature is
// checked before any of the body is decoded.
//
// A push matches a tracked repo when its ref is refs/heads/<branch> and
// either one of its repository URLs equals the repo's URL (after
// normalisation: scheme and host case, default port, user info, trailing
// slash and ".git" are ignored, and scp-like "git@host:path" is read as
// ssh://git@host/path), or its full name is among the repo's webhook names
// (compared without regard to case, as the forges do).
//
// # Caveats
//
// Handler never blocks on the daemon: Trigger must only record the trigger
// (the daemon coalesces triggers per repo). Repository URLs from a payload
// are never logged, since a sender might embed credentials in them; full
// names and repo names are.
package webhook
