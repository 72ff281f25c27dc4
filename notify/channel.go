package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer/certs"
)

// Channel delivers messages to one destination.
type Channel interface {
	// Deliver sends m once. An error wraps ErrRejected or ErrUnavailable
	// (see StatusError); it never contains secrets or full URLs.
	Deliver(ctx context.Context, m Message) (Receipt, error)
}

// ChannelOptions tune the channels built by NewChannel. The zero value
// means defaults.
type ChannelOptions struct {
	// Client sends the requests; nil means a client of its own.
	Client *http.Client
	// Timeout bounds each HTTP request; 0 means 10 s.
	Timeout time.Duration
	// Logger receives debug and warning lines; the zero value discards.
	Logger zerolog.Logger
}

// DefaultTimeout bounds each HTTP request when ChannelOptions.Timeout is 0.
const DefaultTimeout = 10 * time.Second

// NewChannel builds the channel cfg describes.
func NewChannel(cfg ChannelConfig, opts ChannelOptions) (Channel, error) {
	h, err := newHTTP(cfg, opts)
	if err != nil {
		return nil, err
	}
	switch cfg.Kind {
	case KindSlack:
		return &slack{http: h}, nil
	case KindWebhook:
		return &webhook{http: h, secret: []byte(cfg.Secret)}, nil
	case KindJira:
		return NewJira(cfg, opts)
	}
	return nil, fmt.Errorf("channel %s: kind %q (want slack, webhook or jira): %w", cfg.name(), cfg.Kind, ErrInvalidConfig)
}

// httpClient is what every channel shares: one endpoint, a client, a
// per-request timeout and a logger.
type httpClient struct {
	name    string
	base    string // URL as configured; never logged
	client  *http.Client
	timeout time.Duration
	log     zerolog.Logger
}

func newHTTP(cfg ChannelConfig, opts ChannelOptions) (*httpClient, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("channel %s: url %s is not an http(s) URL: %w", cfg.name(), RedactURL(cfg.URL), ErrInvalidConfig)
	}
	h := &httpClient{name: cfg.name(), base: cfg.URL, client: opts.Client, timeout: opts.Timeout, log: opts.Logger}
	if cfg.CAFile != "" {
		// A channel of its own: its CA must not widen what the others trust.
		c, err := certs.ClientTLS{CAFile: cfg.CAFile}.HTTPClient()
		if err != nil {
			return nil, fmt.Errorf("channel %s: %v: %w", cfg.name(), err, ErrInvalidConfig)
		}
		h.client = c
	}
	if h.client == nil {
		h.client = &http.Client{}
	}
	if h.timeout <= 0 {
		h.timeout = DefaultTimeout
	}
	h.log = h.log.With().Str("channel", h.name).Logger()
	return h, nil
}

// request is one HTTP call.
type request struct {
	method, url string
	// safe is the URL as it may be logged; "" logs RedactURL(url).
	safe   string
	body   []byte
	header http.Header
}

func (r request) logURL() string {
	if r.safe != "" {
		return r.safe
	}
	return RedactURL(r.url)
}

// do sends r with the per-request timeout and returns the response body
// of a 2xx answer, or a *StatusError / ErrUnavailable error.
func (h *httpClient) do(ctx context.Context, r request) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, bytes.NewReader(r.body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", ErrRejected)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "deployer-notify")
	start := time.Now()
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %s: %w", r.method, r.logURL(), transportReason(err), ErrUnavailable)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	h.log.Debug().Str("method", r.method).Str("url", r.logURL()).Int("status", resp.StatusCode).
		Dur("took", time.Since(start)).Msg("notify request")
	if resp.StatusCode/100 == 2 {
		return body, nil
	}
	return body, &StatusError{
		Method: r.method, URL: r.logURL(), Status: resp.StatusCode,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Body:       snippet(body),
	}
}

// transportReason describes a transport error without the URL, which a
// *url.Error would print in full.
func transportReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	if why, ok := certs.TLSReason(err, "set notify[].ca_file to the CA bundle that signed it"); ok {
		return why
	}
	return err.Error()
}

// StatusError is a non-2xx answer. It wraps ErrUnavailable for 5xx and
// 429, ErrRejected for other statuses.
type StatusError struct {
	Method, URL string // URL redacted
	Status      int
	// RetryAfter is the server's Retry-After, 0 if none.
	RetryAfter time.Duration
	// Body is the start of the answer, for the log.
	Body string
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// Unwrap classifies the status.
func (e *StatusError) Unwrap() error {
	if e.Status == http.StatusTooManyRequests || e.Status >= 500 {
		return ErrUnavailable
	}
	return ErrRejected
}

func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// RedactURL returns u without anything that may be a credential: user
// info, query and path are replaced, leaving scheme and host.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "<url>"
	}
	s := p.Scheme + "://" + p.Host
	if (p.Path != "" && p.Path != "/") || p.RawQuery != "" {
		s += "/…"
	}
	return s
}
