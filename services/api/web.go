package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/hermodhq/hermod/shared/store"
	"github.com/hermodhq/hermod/shared/streams"
)

// The Webhooks page: a server-rendered shell (html/template) and a little
// hand-written JS and CSS, all embedded. The page talks to the REST API with
// the session cookie; see docs/web.md for the security model.

//go:embed web/templates/*.html
var webTemplates embed.FS

//go:embed web/static
var webStatic embed.FS

const (
	// SessionCookie carries the session token (HttpOnly, SameSite=Strict).
	SessionCookie = "hermod_session"
	// signinCookie carries the sign-in form's double-submit token.
	signinCookie = "hermod_signin"
	// CSRFHeader carries the session's CSRF token on state-changing API requests.
	CSRFHeader = "X-CSRF-Token"
	// DefaultSessionTTL is how long a session lasts without signing in again.
	DefaultSessionTTL = 12 * time.Hour

	maxFormBytes = 4 << 10
)

var pages = template.Must(template.New("pages").Funcs(template.FuncMap{"dict": dict}).
	ParseFS(webTemplates, "web/templates/*.html"))

// dict builds a map from key, value pairs (for passing data to partials).
func dict(kv ...any) map[string]any {
	m := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if k, ok := kv[i].(string); ok {
			m[k] = kv[i+1]
		}
	}
	return m
}

// staticVersion changes whenever the embedded assets change, so the shell
// can let browsers cache them forever.
var staticVersion = func() string {
	h := sha256.New()
	_ = fs.WalkDir(webStatic, "web/static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := webStatic.ReadFile(p)
		h.Write([]byte(p))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

func (s *Server) registerWeb(e *echo.Echo) {
	static, _ := fs.Sub(webStatic, "web/static")
	files := http.StripPrefix("/static/", http.FileServer(http.FS(static)))
	e.GET("/static/*", func(c echo.Context) error {
		// Files only: no directory listings.
		if st, err := fs.Stat(static, c.Param("*")); err != nil || st.IsDir() {
			return notFound("file")
		}
		h := c.Response().Header()
		if c.QueryParam("v") == staticVersion {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		h.Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(c.Response(), c.Request())
		return nil
	})
	e.GET("/", s.pageApp)
	e.GET("/signin", s.pageSignin)
	e.POST("/signin", s.signin)
	e.POST("/signout", s.signout)
}

// pageHeaders are set on every HTML answer: no framing, no inline script,
// nothing from another origin.
func pageHeaders(c echo.Context) {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (s *Server) render(c echo.Context, status int, name string, data map[string]any) error {
	pageHeaders(c)
	data["Version"] = s.opts.Version
	data["Static"] = staticVersion
	var b strings.Builder
	if err := pages.ExecuteTemplate(&b, name, data); err != nil {
		return err
	}
	return c.HTML(status, b.String())
}

// session returns the request's session, or nil when it has none (or it is
// signed out or expired).
func (s *Server) session(c echo.Context) (*store.Session, error) {
	ck, err := c.Cookie(SessionCookie)
	if err != nil || ck.Value == "" {
		return nil, nil
	}
	sess, err := s.st.GetSession(c.Request().Context(), ck.Value)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !s.keyConfigured(sess.KeyID) {
		return nil, nil // signed in with a key that has since been removed
	}
	return sess, nil
}

func (s *Server) pageApp(c echo.Context) error {
	sess, err := s.session(c)
	if err != nil {
		return unavailable("redis", err)
	}
	if sess == nil {
		return c.Redirect(http.StatusSeeOther, "/signin")
	}
	return s.render(c, http.StatusOK, "app.html", map[string]any{"CSRF": sess.CSRF, "Statuses": streams.Statuses})
}

// secureCookies says whether cookies get the Secure flag: always behind TLS
// (directly or as told by a proxy), and when the operator insists.
func (s *Server) secureCookies(c echo.Context) bool {
	return s.opts.SecureCookies || c.Request().TLS != nil ||
		strings.EqualFold(c.Request().Header.Get("X-Forwarded-Proto"), "https")
}

func (s *Server) pageSignin(c echo.Context) error {
	return s.signinForm(c, http.StatusOK, "")
}

// signinForm renders the sign-in form with a fresh double-submit token: the
// same random value in a cookie and in a hidden field, so another site
// cannot sign a browser in to a session of its choosing.
func (s *Server) signinForm(c echo.Context, status int, msg string) error {
	tok, err := store.RandomToken(24)
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{Name: signinCookie, Value: tok, Path: "/signin", MaxAge: 900, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.secureCookies(c)})
	return s.render(c, status, "signin.html", map[string]any{"Token": tok, "Error": msg})
}

// crossSite reports a request that a browser sent on behalf of another
// origin: Sec-Fetch-Site says so, or Origin names another host.
func crossSite(c echo.Context) bool {
	r := c.Request()
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if o == "null" || err != nil {
			return true
		}
		// Behind a proxy that rewrites Host, the public host arrives in
		// X-Forwarded-Host.
		fwd := r.Header.Get("X-Forwarded-Host")
		if !strings.EqualFold(u.Host, r.Host) && (fwd == "" || !strings.EqualFold(u.Host, fwd)) {
			return true
		}
	}
	return false
}

// keyID names an admin key without revealing it (sessions record it).
func keyID(key []byte) string {
	sum := sha256.Sum256(append([]byte("hermod-admin-key:"), key...))
	return hex.EncodeToString(sum[:16])
}

// matchKey returns the id of the configured admin key equal to key, or ""
// when none is. It compares SHA-256 digests in constant time against every
// key, so neither the match nor the keys' lengths show in the timing.
func (s *Server) matchKey(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	found := ""
	for i, d := range s.keyDigests {
		if subtle.ConstantTimeCompare(sum[:], d[:]) == 1 {
			found = s.keyIDs[i]
		}
	}
	return found
}

func (s *Server) checkKey(key string) bool { return s.matchKey(key) != "" }

// keyConfigured says whether a session's key is still one of the admin keys.
func (s *Server) keyConfigured(id string) bool {
	ok := 0
	for _, k := range s.keyIDs {
		ok |= subtle.ConstantTimeCompare([]byte(id), []byte(k))
	}
	return ok == 1
}

func (s *Server) signin(c echo.Context) error {
	if crossSite(c) {
		return apiErr(http.StatusForbidden, "csrf", "cross-site sign-in refused")
	}
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return badRequest("malformed form")
	}
	ck, err := c.Cookie(signinCookie)
	tok := r.PostForm.Get("csrf")
	if err != nil || tok == "" || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(tok)) != 1 {
		return s.signinForm(c, http.StatusForbidden, "The sign-in form expired. Please try again.")
	}
	kid := s.matchKey(r.PostForm.Get("key"))
	if kid == "" {
		s.log.Warn().Str("remote", c.RealIP()).Msg("web sign-in refused: wrong admin key")
		return s.signinForm(c, http.StatusUnauthorized, "That admin key is not valid.")
	}
	// A new sign-in replaces the browser's old session, if it had one.
	if old, err := c.Cookie(SessionCookie); err == nil && old.Value != "" {
		if err := s.st.DeleteSession(r.Context(), old.Value); err != nil {
			return unavailable("redis", err)
		}
	}
	ttl := s.opts.SessionTTL
	sess, err := s.st.CreateSession(r.Context(), kid, ttl)
	if err != nil {
		return unavailable("redis", err)
	}
	c.SetCookie(&http.Cookie{Name: signinCookie, Value: "", Path: "/signin", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.secureCookies(c)})
	c.SetCookie(&http.Cookie{Name: SessionCookie, Value: sess.Token, Path: "/", MaxAge: int(ttl.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secureCookies(c)})
	s.log.Info().Str("remote", c.RealIP()).Msg("web sign-in")
	return c.Redirect(http.StatusSeeOther, "/")
}

func (s *Server) signout(c echo.Context) error {
	if crossSite(c) {
		return apiErr(http.StatusForbidden, "csrf", "cross-site sign-out refused")
	}
	r := c.Request()
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return badRequest("malformed form")
	}
	sess, err := s.session(c)
	if err != nil {
		return unavailable("redis", err)
	}
	if sess != nil {
		if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(sess.CSRF)) != 1 {
			return apiErr(http.StatusForbidden, "csrf", "missing or wrong CSRF token")
		}
		ck, _ := c.Cookie(SessionCookie)
		if err := s.st.DeleteSession(r.Context(), ck.Value); err != nil {
			return unavailable("redis", err)
		}
	}
	c.SetCookie(&http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: s.secureCookies(c)})
	return c.Redirect(http.StatusSeeOther, "/signin")
}

// sessionAuth admits an API request carried by the page's session cookie.
// Reads need only the session; anything that changes state also needs the
// session's CSRF token in X-CSRF-Token and must not come from another site.
func (s *Server) sessionAuth(c echo.Context) (bool, error) {
	sess, err := s.session(c)
	if err != nil {
		return false, unavailable("redis", err)
	}
	if sess == nil {
		return false, nil
	}
	switch c.Request().Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true, nil
	}
	if crossSite(c) {
		return false, apiErr(http.StatusForbidden, "csrf", "cross-site request refused")
	}
	tok := c.Request().Header.Get(CSRFHeader)
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(sess.CSRF)) != 1 {
		return false, apiErr(http.StatusForbidden, "csrf", "missing or wrong CSRF token (header "+CSRFHeader+")")
	}
	return true, nil
}
