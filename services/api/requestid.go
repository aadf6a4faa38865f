package api

import (
	"crypto/rand"
	"regexp"

	"github.com/labstack/echo/v4"
)

// RequestIDHeader carries every request's id: the caller's own when it is
// short and safe (safeRequestID), else one generated here. Every answer
// carries it, an error envelope has it as request_id, and the log line of a
// 5xx answer names it.
const RequestIDHeader = "X-Request-Id"

// safeRequestID is an id that may be echoed and logged as given: at most 64
// characters, none that could break a header or a log line.
var safeRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// requestIDKey holds the id in the echo context.
const requestIDKey = "hermod.request_id"

// requestID gives the request its id before routing, so even an unknown
// route's answer carries one.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(RequestIDHeader)
		if !safeRequestID.MatchString(id) {
			id = rand.Text()
		}
		c.Set(requestIDKey, id)
		c.Response().Header().Set(RequestIDHeader, id)
		return next(c)
	}
}

// requestIDOf returns the request's id (one is made when the middleware did
// not run, e.g. a handler served outside the server).
func requestIDOf(c echo.Context) string {
	if id, ok := c.Get(requestIDKey).(string); ok {
		return id
	}
	id := rand.Text()
	c.Set(requestIDKey, id)
	c.Response().Header().Set(RequestIDHeader, id)
	return id
}
