// Package client is the Go SDK of the xtrace server, for Nebula's Go
// components (Router, Scheduler, Gateway, node agents): push metrics, query
// them for routing decisions, ingest and read traces.
//
// Reads may be answered by a read replica of the server's database, which
// lags the primary by up to the server's XTRACE_READ_MAX_LAG (2 s by
// default). The client does not ask for more by default: routing reads
// tolerate that, and the server itself sends a query to the primary when a
// replica's answer would make a live series look stale. A caller that must
// read what it has just written uses WithStrongReads, or StrongReads for one
// call.
//
// Requests retry on 429 (waiting at least Retry-After), 5xx and network
// errors with capped exponential backoff and ±20 % jitter, within the
// context's deadline; they never retry 400, 401 or 404. Pushes are safe to
// retry because the server is idempotent.
//
// The package depends on the standard library only.
package client

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of a new Client.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	// MaxPointsPerPush is the server's batch limit; PushMetrics splits larger slices.
	MaxPointsPerPush = 10000
)

// RetryPolicy controls retries of failed requests.
type RetryPolicy struct {
	// MaxAttempts counts the first try; 1 disables retries.
	MaxAttempts int
	// BaseDelay is the wait before the first retry; it doubles each time.
	BaseDelay time.Duration
	// MaxDelay caps one wait (Retry-After may ask for longer; the wait is then Retry-After).
	MaxDelay time.Duration
	// Jitter spreads each wait by ± this fraction.
	Jitter float64
}

// DefaultRetryPolicy: 4 attempts, 200 ms doubling, capped at 5 s, ±20 % jitter.
var DefaultRetryPolicy = RetryPolicy{MaxAttempts: 4, BaseDelay: 200 * time.Millisecond, MaxDelay: 5 * time.Second, Jitter: 0.2}

// Client talks to one xtrace server. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	auth      string
	http      *http.Client
	retry     RetryPolicy
	userAgent string
	connect   time.Duration
	request   time.Duration
	custom    bool // caller supplied the *http.Client
	strong    bool // every request asks for strong reads

	// sleep waits between attempts; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
	mu    sync.Mutex
	rng   *rand.Rand
}

// Option configures a Client.
type Option func(*Client) error

// WithBasicAuth authenticates with a Langfuse-style key pair instead of a bearer token.
func WithBasicAuth(publicKey, secretKey string) Option {
	return func(c *Client) error {
		c.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(publicKey+":"+secretKey))
		return nil
	}
}

// WithHTTPClient uses hc for every request (its own timeouts then apply).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("client: nil *http.Client")
		}
		c.http, c.custom = hc, true
		return nil
	}
}

// WithTimeouts sets the connect timeout and the per-attempt request timeout.
func WithTimeouts(connect, request time.Duration) Option {
	return func(c *Client) error {
		if connect <= 0 || request <= 0 {
			return errors.New("client: timeouts must be positive")
		}
		c.connect, c.request = connect, request
		return nil
	}
}

// WithRetry replaces the retry policy.
func WithRetry(p RetryPolicy) Option {
	return func(c *Client) error {
		if p.MaxAttempts < 1 || p.BaseDelay < 0 || p.MaxDelay < 0 || p.Jitter < 0 || p.Jitter >= 1 {
			return errors.New("client: invalid retry policy")
		}
		c.retry = p
		return nil
	}
}

// ConsistencyHeader is the request header that asks the server for reads
// that see every committed write ("strong": the primary answers, never a
// read replica).
const ConsistencyHeader = "X-Xtrace-Consistency"

// WithStrongReads makes every read of the client see every write the server
// has acknowledged (to anyone), by sending ConsistencyHeader: strong. It
// costs the primary the reads that replicas would otherwise take.
func WithStrongReads() Option {
	return func(c *Client) error { c.strong = true; return nil }
}

type strongKey struct{}

// StrongReads returns ctx that makes the calls made with it read every
// acknowledged write (ConsistencyHeader: strong), e.g. a query right after a push.
func StrongReads(ctx context.Context) context.Context {
	return context.WithValue(ctx, strongKey{}, true)
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) error { c.userAgent = ua; return nil }
}

// New returns a client for the server at baseURL (e.g. http://xtrace.observability.svc:8742)
// authenticating with a bearer token (or WithBasicAuth).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q is not an http(s) URL", baseURL)
	}
	c := &Client{
		base: u, retry: DefaultRetryPolicy, userAgent: "xtrace-go-client",
		connect: DefaultConnectTimeout, request: DefaultRequestTimeout,
		rng: rand.New(rand.NewSource(time.Now().UnixNano())), sleep: sleepCtx,
	}
	if token != "" {
		c.auth = "Bearer " + token
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.auth == "" {
		return nil, errors.New("client: a token or WithBasicAuth is required")
	}
	if !c.custom {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.DialContext = (&net.Dialer{Timeout: c.connect, KeepAlive: 30 * time.Second}).DialContext
		transport.TLSHandshakeTimeout = c.connect
		c.http = &http.Client{Transport: transport}
	}
	return c, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff returns the wait before retry number n (1-based), before Retry-After.
func (c *Client) backoff(n int) time.Duration {
	d := c.retry.BaseDelay << (n - 1)
	if d > c.retry.MaxDelay || d <= 0 {
		d = c.retry.MaxDelay
	}
	c.mu.Lock()
	f := 1 + c.retry.Jitter*(2*c.rng.Float64()-1)
	c.mu.Unlock()
	return time.Duration(float64(d) * f)
}

// do sends a request with retries and decodes a 2xx JSON answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("client: encode request: %w", err)
		}
	}
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var lastErr error
	for attempt := 1; ; attempt++ {
		retryAfter, err := c.once(ctx, method, u.String(), payload, out)
		if err == nil {
			return nil
		}
		lastErr = err
		if !retryable(err) || attempt >= c.retry.MaxAttempts {
			return lastErr
		}
		wait := c.backoff(attempt)
		if retryAfter > wait {
			wait = retryAfter
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return lastErr // waiting would outlive the caller's deadline
		}
		if err := c.sleep(ctx, wait); err != nil {
			return lastErr
		}
	}
}

func (c *Client) once(ctx context.Context, method, u string, payload []byte, out any) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, c.request)
	defer cancel()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if strong, _ := ctx.Value(strongKey{}).(bool); strong || c.strong {
		req.Header.Set(ConsistencyHeader, "strong")
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, &NetworkError{Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, &NetworkError{Err: err}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out != nil {
			if err := json.Unmarshal(data, out); err != nil {
				return 0, &DecodeError{Status: resp.StatusCode, Err: err}
			}
		}
		return 0, nil
	}
	apiErr := &APIError{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	var body struct {
		Message string `json:"message"`
		Code    string `json:"code"`
	}
	if json.Unmarshal(data, &body) == nil {
		apiErr.Message, apiErr.Code = body.Message, body.Code
	}
	if apiErr.Message == "" {
		apiErr.Message = strings.TrimSpace(string(data))
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(s); err == nil && secs > 0 {
			apiErr.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	return apiErr.RetryAfter, apiErr
}

func retryable(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status == http.StatusTooManyRequests || apiErr.Status >= 500
	}
	var netErr *NetworkError
	return errors.As(err, &netErr)
}
