package api

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/hermodhq/hermod/shared/webhooks"
)

// APIError is the JSON error envelope of every failed request.
type APIError struct {
	Status  int            `json:"-"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details"`
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

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

func unavailable(dep string, err error) *APIError {
	e := apiErr(http.StatusServiceUnavailable, "unavailable", dep+" is unavailable")
	e.Details["dependency"] = dep
	_ = err // never echo driver errors: they may name addresses
	return e
}

func fromFieldError(err error) (*APIError, bool) {
	var fe *webhooks.FieldError
	if errors.As(err, &fe) {
		return invalidField(fe.Field, fe.Message), true
	}
	return nil, false
}

// errorHandler writes every error as the envelope.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
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
	default:
		s.log.Error().Err(err).Str("path", c.Path()).Msg("request failed")
		ae = apiErr(http.StatusInternalServerError, "internal", "internal error")
	}
	_ = c.JSON(ae.Status, ae)
}
