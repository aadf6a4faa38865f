// Package api serves Hermod's REST API v1, the OpenAPI document, the health
// endpoints and the Webhooks page. The agents' control plane is its own
// package (controlplane).
package api

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/hermodhq/hermod/shared/catalog"
	"github.com/hermodhq/hermod/shared/delivery"
	"github.com/hermodhq/hermod/shared/index"
	"github.com/hermodhq/hermod/shared/metrics"
	"github.com/hermodhq/hermod/shared/ops"
	"github.com/hermodhq/hermod/shared/store"
)

//go:embed openapi.json
var openAPI []byte

// Options configure the API.
type Options struct {
	AdminKeys     []string
	MaxEventBytes int64
	MaxBodyBytes  int64 // other bodies (default 64 KiB)
	Limits        store.Limits
	Version       string
	AcquireTTL    time.Duration // ack wait of the label-set consumers
	SessionTTL    time.Duration // web page sessions (default 12h)
	SecureCookies bool          // always mark cookies Secure (else only behind TLS)
	ReplayRate    int           // deliveries per second all replays of this process requeue (default 500)
}

// Server is the API server.
type Server struct {
	e      *echo.Echo
	st     *store.Store
	nc     *nats.Conn
	js     jetstream.JetStream
	cat    *catalog.Catalog
	client *delivery.Client
	health *ops.Health
	m      *metrics.Metrics
	log    zerolog.Logger
	opts   Options
	// keyDigests and keyIDs describe the admin keys (SHA-256 digests for
	// constant-time checks; ids recorded in web sessions).
	keyDigests [][32]byte
	keyIDs     []string

	notifier *index.Notifier
	kicker   AgentKicker // nil: grant changes kick no connection
	replayer *Replayer
}

// New builds the API. client makes the test endpoint's request; kicker
// closes an agent's connections after a grant change (the control plane).
func New(st *store.Store, nc *nats.Conn, js jetstream.JetStream, notifier *index.Notifier, kicker AgentKicker,
	cat *catalog.Catalog, client *delivery.Client, health *ops.Health, m *metrics.Metrics, log zerolog.Logger,
	opts Options) *Server {
	if opts.MaxEventBytes <= 0 {
		opts.MaxEventBytes = 256 << 10
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 10
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	s := &Server{st: st, nc: nc, js: js, cat: cat, client: client, health: health, m: m, log: log, opts: opts,
		notifier: notifier, kicker: kicker}
	for _, k := range opts.AdminKeys {
		s.keyDigests = append(s.keyDigests, sha256.Sum256([]byte(k)))
		s.keyIDs = append(s.keyIDs, keyID([]byte(k)))
	}
	s.replayer = newReplayer(s.requeuer(), opts.ReplayRate, s.replayKeep(), log)
	e := echo.New()
	// The client address in logs is the connection's: X-Forwarded-For is
	// whatever the client says unless a trusted proxy set it.
	e.IPExtractor = echo.ExtractIPDirect()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.Pre(requestID)
	e.Use(recoverer)
	e.GET("/healthz", echo.WrapHandler(http.HandlerFunc(health.Healthz)))
	e.GET("/readyz", echo.WrapHandler(http.HandlerFunc(health.Readyz)))
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})))
	e.GET("/openapi.json", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/json", openAPI) })
	s.registerWeb(e)
	v1 := e.Group("/api/v1", s.auth)
	v1.POST("/webhooks", s.createWebhook)
	v1.GET("/webhooks", s.listWebhooks)
	v1.GET("/webhooks/:id", s.getWebhook)
	v1.PUT("/webhooks/:id", s.updateWebhook)
	v1.PATCH("/webhooks/:id", s.updateWebhook)
	v1.DELETE("/webhooks/:id", s.deleteWebhook)
	v1.POST("/webhooks/:id/pause", s.pauseWebhook)
	v1.POST("/webhooks/:id/resume", s.resumeWebhook)
	v1.POST("/webhooks/:id/test", s.testWebhook)
	v1.POST("/webhooks/:id/preview", s.previewWebhook)
	v1.POST("/webhooks/preview", s.previewUnsaved)
	v1.GET("/webhooks/:id/secret", s.getSecret)
	v1.POST("/webhooks/:id/secret/rotate", s.rotateSecret)
	v1.GET("/webhooks/:id/stats", s.webhookStats)
	v1.GET("/webhooks/:id/deliveries", s.listDeliveries)
	v1.GET("/deliveries/:id", s.getDelivery)
	v1.POST("/deliveries/:id/retry", s.retryDelivery)
	v1.POST("/webhooks/:id/replay", s.createReplay)
	v1.GET("/replays", s.listReplays)
	v1.GET("/replays/:id", s.getReplay)
	v1.POST("/replays/:id/cancel", s.cancelReplay)
	v1.GET("/event-types", s.eventTypes)
	v1.POST("/events", s.publishEvent)
	v1.POST("/agents", s.createAgent)
	v1.GET("/agents", s.listAgents)
	v1.GET("/agents/:id", s.getAgent)
	v1.PUT("/agents/:id", s.updateAgent)
	v1.DELETE("/agents/:id", s.deleteAgent)
	// Unknown routes under /api/v1 still need the key (no route probing).
	v1.Any("/*", func(c echo.Context) error { return notFound("route") })
	s.e = e
	return s
}

// Replayer is the process's runner of bulk replays (run by the API's
// lifecycle components).
func (s *Server) Replayer() *Replayer { return s.replayer }

// Handler returns the HTTP handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.e }

// Serve serves on l until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.e, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		<-done
		return err
	case err := <-done:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

// recoverer turns a handler's panic into a 500 (logged by errorHandler
// with the request's id).
func recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = internal(fmt.Errorf("handler panicked: %v", r))
			}
		}()
		return next(c)
	}
}

// auth admits a request with a Bearer admin key (checked in constant time
// against every key) or, for the web page, a session cookie (see sessionAuth).
func (s *Server) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get("Authorization")
		if token, ok := strings.CutPrefix(h, "Bearer "); ok || h != "" {
			if ok && s.checkKey(token) {
				return next(c)
			}
			return unauthorized(c)
		}
		ok, err := s.sessionAuth(c)
		if err != nil {
			return err
		}
		if !ok {
			return unauthorized(c)
		}
		return next(c)
	}
}

func unauthorized(c echo.Context) error {
	c.Response().Header().Set("WWW-Authenticate", `Bearer realm="hermod"`)
	return apiErr(http.StatusUnauthorized, "unauthorized", "a valid admin key is required (Authorization: Bearer <key>)")
}

// readBody reads at most limit bytes of the body; more is 413, and a body
// that is not UTF-8 is 400.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	r := http.MaxBytesReader(c.Response(), c.Request().Body, limit)
	b, err := io.ReadAll(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge("body", limit)
		}
		return nil, badRequest("could not read the body")
	}
	// encoding/json would turn invalid bytes into U+FFFD and store them.
	if !utf8.Valid(b) {
		return nil, badRequest("malformed JSON: the body is not valid UTF-8")
	}
	return b, nil
}

// pageParams reads limit (1-500, default 50) and cursor.
func pageParams(c echo.Context) (int, string, error) {
	if _, err := url.ParseQuery(c.Request().URL.RawQuery); err != nil {
		return 0, "", badRequest("malformed query string")
	}
	limit := 50
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, "", badRequest("limit must be an integer")
		}
		if n < 1 || n > 500 {
			return 0, "", invalidField("limit", "must be between 1 and 500")
		}
		limit = n
	}
	return limit, c.QueryParam("cursor"), nil
}

func storeErr(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound(what)
	case errors.Is(err, store.ErrBadCursor):
		return badRequest("malformed cursor")
	default:
		return unavailable("redis", err)
	}
}
