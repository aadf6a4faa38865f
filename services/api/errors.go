package api

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"

	"github.com/labstack/echo/v4"

	"github.com/hermodhq/hermod/shared/webhooks"
)

// APIError is the JSON error envelope of every failed request.
type APIError struct {
	Status  int            `json:"-"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
	// RequestID is the request's id, also in the X-Request-Id header and in
	// the log line of a 5xx answer.
	RequestID string `json:"request_id"`
	// cause is what made a 5xx answer: logged, never answered.
	cause error
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// Unwrap returns the cause of a 5xx answer (nil for the others).
func (e *APIError) Unwrap() error { return e.cause }

func apiErr(status int, code, msg string) *APIError {
	return &APIError{Status: status, Code: code, Message: msg, Details: map[string]any{}}
}

func badRequest(msg string) *APIError { return apiErr(http.StatusBadRequest, "bad_request", msg) }

func invalidField(field, msg string) *APIError {
	e := apiErr(http.StatusUnprocessableEntity, "invalid_field", field+" "+msg)
	e.Details["field"] = field
	return e
}

func notFound(what string) *APIError {
	return apiErr(http.StatusNotFound, "not_found", what+" not found")
}

func conflict(msg string) *APIError { return apiErr(http.StatusConflict, "conflict", msg) }

// unavailable is the 503 of a dependency that failed with err. The answer
// names the dependency only (driver errors may name addresses); err is the
// cause in the log line.
func unavailable(dep string, err error) *APIError {
	e := apiErr(http.StatusServiceUnavailable, "unavailable", dep+" is unavailable")
	e.Details["dependency"] = dep
	e.cause = err
	return e
}

// internal is the 500 of an unexpected failure; err is logged.
func internal(err error) *APIError {
	e := apiErr(http.StatusInternalServerError, "internal", "internal error")
	e.cause = err
	return e
}

// tooLarge is the 413 of a body, or a part of one (what), over limit bytes.
func tooLarge(what string, limit int64) *APIError {
	e := apiErr(http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("%s is larger than %d bytes", what, limit))
	e.Details["limit_bytes"] = limit
	return e
}

// nestedIn is err, a refusal of a body, as the refusal of that body nested
// under name in a larger one: the same status and code, its field (and the
// message) under name.
func nestedIn(name string, err error) error {
	var ae *APIError
	if !errors.As(err, &ae) {
		return err
	}
	e := *ae
	e.Details = maps.Clone(ae.Details)
	if f, ok := e.Details["field"].(string); ok {
		e.Details["field"], e.Message = name+"."+f, name+"."+e.Message
	} else {
		e.Message = name + ": " + e.Message
	}
	return &e
}

func fromFieldError(err error) (*APIError, bool) { return fieldErrorIn("", err) }

// fieldErrorIn is fromFieldError for a body nested under prefix ("webhook.").
func fieldErrorIn(prefix string, err error) (*APIError, bool) {
	var fe *webhooks.FieldError
	if errors.As(err, &fe) {
		ae := invalidField(prefix+fe.Field, fe.Message)
		if fe.Line > 0 {
			ae.Details["line"], ae.Details["column"] = fe.Line, fe.Column
		}
		return ae, true
	}
	return nil, false
}

// errorHandler writes every error as the envelope, with the request's id.
// A 5xx answer is logged with the same id and its cause.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		s.log.Error().Str("request_id", requestIDOf(c)).Str("method", c.Request().Method).Str("route", c.Path()).
			Str("error", redactURLs(err.Error())).Msg("request failed after its answer was sent")
		return
	}
	var ae *APIError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &he):
		code := "error"
		switch he.Code {
		case http.StatusNotFound:
			code = "not_found"
		case http.StatusMethodNotAllowed:
			code = "method_not_allowed"
		case http.StatusUnauthorized:
			code = "unauthorized"
		case http.StatusRequestEntityTooLarge:
			code = "too_large"
		}
		msg := http.StatusText(he.Code)
		if m, ok := he.Message.(string); ok {
			msg = m
		}
		ae = apiErr(he.Code, code, msg)
		if he.Code >= 500 {
			ae.cause = err
		}
	default:
		ae = internal(err)
	}
	ae.RequestID = requestIDOf(c)
	if ae.Status >= 500 {
		ev := s.log.Error().Str("request_id", ae.RequestID).Str("method", c.Request().Method).Str("route", c.Path()).
			Int("status", ae.Status).Str("code", ae.Code)
		if dep, ok := ae.Details["dependency"].(string); ok {
			ev = ev.Str("dependency", dep)
		}
		if ae.cause != nil {
			ev = ev.Str("error", redactURLs(ae.cause.Error()))
		}
		ev.Msg("request failed")
	}
	_ = c.JSON(ae.Status, ae)
}

// urlInText finds URLs in an error's text.
var urlInText = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]+`)

// redactURLs keeps only the scheme and host of every URL in s: an error may
// quote a URL with a password, a token in its path or query, or a webhook's
// URL, none of which belongs in a log line.
func redactURLs(s string) string {
	return urlInText.ReplaceAllStringFunc(s, func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return "[redacted URL]"
		}
		return u.Scheme + "://" + u.Host + "/[redacted]"
	})
}
