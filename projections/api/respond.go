package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/gallerist/gallerist/projections/views"
)

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	// Error says what is wrong, for a human.
	Error string `json:"error" doc:"What is wrong, for a human."`
	// Field names the parameter, header or body field at fault, if one is.
	Field string `json:"field,omitempty" doc:"The query parameter, path parameter, header or body field at fault, when one is."`
}

// writeJSON writes v as the JSON answer (UTF-8, HTML characters not
// escaped).
func writeJSON(c *gin.Context, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		c.Data(http.StatusInternalServerError, "application/json; charset=utf-8", []byte(`{"error":"internal error: the answer could not be encoded"}`+"\n"))
		return
	}
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(status, "application/json; charset=utf-8", b.Bytes())
}

// writeError writes an error answer.
func writeError(c *gin.Context, status int, msg, field string) {
	writeJSON(c, status, ErrorBody{Error: msg, Field: field})
}

// fieldError is a client error about one parameter (400).
type fieldError struct {
	field, msg string
}

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func badField(field, msg string) *fieldError { return &fieldError{field: field, msg: msg} }

// writeFieldError answers 400 for e.
func writeFieldError(c *gin.Context, e *fieldError) {
	writeError(c, http.StatusBadRequest, e.msg, e.field)
}

// answerPage answers a listing, or its error.
func (s *Server) answerPage(c *gin.Context, what string, err error, seq uint64, out any) {
	if errors.Is(err, views.ErrBadCursor) {
		writeError(c, http.StatusBadRequest, "not a cursor of this listing (it continues a listing in the same order, from nextCursor)", "cursor")
		return
	}
	if err != nil {
		s.failed(c, what, err)
		return
	}
	setConsistency(c, seq)
	writeJSON(c, http.StatusOK, out)
}
