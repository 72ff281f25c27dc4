package webhook

import "errors"

// ErrSignature is returned when a webhook's signature or token is missing or
// does not match the secret. The handler answers 401.
var ErrSignature = errors.New("bad or missing webhook signature")

// ErrNotConfigured is returned when no webhook secret is configured, so no
// webhook can be verified. The handler answers 401.
var ErrNotConfigured = errors.New("webhooks are not configured: set listen.webhook_secret_file")

// ErrMalformed is returned when a correctly signed body is not a valid event:
// bad JSON, or a push without a ref (or, for the generic sender, without a
// repo). The handler answers 400.
var ErrMalformed = errors.New("malformed webhook")

// ErrTooLarge is returned when a body is over MaxBodyBytes. The handler
// answers 413.
var ErrTooLarge = errors.New("webhook body too large")

// ErrIgnored is returned when a correctly signed event is valid but is not a
// push (a GitHub ping, a GitLab merge request, a Gitea issue event, ...). It
// triggers nothing, and the handler answers 204.
var ErrIgnored = errors.New("webhook event is not a push")

// ErrUnknownProvider is returned when the provider is not one of GitHub,
// GitLab, Gitea or Generic. The handler answers 404.
var ErrUnknownProvider = errors.New("unknown webhook provider")
