package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gallerist/gallerist/projections/views"
)

// ParkedList is the answer of GET /v1/effects/parked.
type ParkedList struct {
	Effects   []views.ParkedEffect `json:"effects" doc:"Parked events, oldest first."`
	Truncated bool                 `json:"truncated" doc:"More parked events match than limit allows."`
	// ConsistentTo is the effects view's checkpoint.
	ConsistentTo uint64 `json:"consistentTo" doc:"The list reflects every event up to this sequence (the effects view's checkpoint)."`
}

// RedriveRequest is the body of POST /v1/effects/redrive.
type RedriveRequest struct {
	Effect     string `json:"effect" doc:"The effect whose parked events to re-drive, e.g. webhook."`
	InstanceID string `json:"instanceId,omitempty" doc:"Re-drive only this instance's parked events; omitted: every instance with parked events of the effect."`
	EventSeq   uint64 `json:"eventSeq,omitempty" doc:"With instanceId: re-drive only this parked event (its stream sequence, eventSeq in the parked list); it must be the instance's oldest parked event."`
	Operator   string `json:"operator" doc:"Who asks: recorded in the log with the re-drive (EffectRedriven)."`
}

// RedriveResult is the answer of POST /v1/effects/redrive.
type RedriveResult struct {
	Redriven int `json:"redriven" doc:"How many instances were re-driven."`
	// ConsistentTo is the effects view's checkpoint when the re-drive was
	// accepted.
	ConsistentTo uint64 `json:"consistentTo" doc:"The effects view's checkpoint when the re-drive was accepted; the parked list shows the re-drive once its checkpoint is past the EffectRedriven events."`
}

// maxRedriveBody bounds the body of a re-drive.
const maxRedriveBody = 64 << 10

func (s *Server) parked(c *gin.Context) {
	q, ferr := parseQuery(c, parkedParams)
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	var pq views.ParkedQuery
	if pq.Effect, ferr = q.text("effect"); ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	if pq.InstanceID, ferr = q.text("instanceId"); ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	limit, ferr := q.integer("limit")
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	pq.Limit = limit + 1 // one more tells whether there are more
	ctx, cancel := withTimeout(c, queryTimeout)
	defer cancel()
	res, err := s.views.ParkedEffects(ctx, pq)
	if err != nil {
		s.failed(c, "parked effects", err)
		return
	}
	out := ParkedList{Effects: res.Effects, ConsistentTo: res.Seq}
	if len(out.Effects) > limit {
		out.Effects, out.Truncated = out.Effects[:limit], true
	}
	if out.Effects == nil {
		out.Effects = []views.ParkedEffect{}
	}
	setConsistency(c, res.Seq)
	writeJSON(c, http.StatusOK, out)
}

func (s *Server) redrive(c *gin.Context) {
	if _, ferr := parseQuery(c, nil); ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	req, ferr := readRedrive(c.Request)
	if ferr != nil {
		writeFieldError(c, ferr)
		return
	}
	if s.effects == nil {
		writeError(c, http.StatusServiceUnavailable, "re-drive is not available: this server runs no effects", "")
		return
	}
	ctx, cancel := withTimeout(c, redriveTimeout)
	defer cancel()
	seq, err := s.views.Checkpoint(ctx, views.ViewEffects)
	if err != nil {
		s.failed(c, "the effects view", err)
		return
	}
	token, _ := c.Get(tokenKey)
	log := s.logger.With("effect", req.Effect, "instanceId", req.InstanceID, "eventSeq", req.EventSeq, "operator", req.Operator, "token", token)
	n := 1
	if req.EventSeq != 0 {
		err = s.effects.RedriveEvent(ctx, req.Effect, req.InstanceID, req.EventSeq, req.Operator)
	} else if req.InstanceID != "" {
		err = s.effects.Redrive(ctx, req.Effect, req.InstanceID, req.Operator)
	} else {
		n, err = s.effects.RedriveAll(ctx, req.Effect, req.Operator)
	}
	if err != nil {
		s.redriveFailed(c, log, err)
		return
	}
	log.Info("re-drive", "instances", n)
	setConsistency(c, seq)
	writeJSON(c, http.StatusAccepted, RedriveResult{Redriven: n, ConsistentTo: seq})
}

// redriveFailed answers an error of Effects (see the Effects interface).
func (s *Server) redriveFailed(c *gin.Context, log *slog.Logger, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(c, http.StatusNotFound, err.Error(), "")
	case errors.Is(err, ErrInvalid):
		writeError(c, http.StatusBadRequest, err.Error(), "")
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		log.Warn("re-drive unavailable", "err", err)
		writeError(c, http.StatusServiceUnavailable, err.Error(), "")
	case errors.Is(err, context.Canceled) && c.Request.Context().Err() != nil:
		log.Warn("re-drive abandoned by the client", "err", err)
		c.Abort()
	default:
		log.Error("re-drive failed", "err", err)
		writeError(c, http.StatusInternalServerError, "re-drive failed: "+err.Error(), "")
	}
}

// readRedrive reads and checks a re-drive request: one JSON object with
// string members effect and operator (required) and instanceId (optional,
// but not empty: an empty one must not turn into "every instance"), and
// the number eventSeq (optional, with instanceId).
func readRedrive(r *http.Request) (RedriveRequest, *fieldError) {
	var req RedriveRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRedriveBody+1))
	if err != nil {
		return req, badField("", "the body could not be read")
	}
	if len(body) > maxRedriveBody {
		return req, badField("", fmt.Sprintf("the body exceeds %d bytes", maxRedriveBody))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var members map[string]json.RawMessage
	if err := dec.Decode(&members); err != nil || members == nil {
		return req, badField("", `the body must be a JSON object: {"effect": "…", "operator": "…", "instanceId": "…"}`)
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, badField("", "the body must be one JSON object")
	}
	fields := map[string]*string{"effect": &req.Effect, "instanceId": &req.InstanceID, "operator": &req.Operator}
	names := make([]string, 0, len(members))
	for name := range members {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == "eventSeq" {
			if err := json.Unmarshal(members[name], &req.EventSeq); err != nil || req.EventSeq == 0 {
				return req, badField(name, "must be a positive integer (a stream sequence)")
			}
			continue
		}
		dst, ok := fields[name]
		if !ok {
			return req, badField(truncate(name, 64), "unknown field")
		}
		if err := json.Unmarshal(members[name], dst); err != nil || string(members[name]) == "null" {
			return req, badField(name, "must be a string")
		}
	}
	if req.Effect == "" {
		return req, badField("effect", "is required")
	}
	if ferr := checkText("effect", req.Effect); ferr != nil {
		return req, ferr
	}
	if strings.TrimSpace(req.Operator) == "" {
		return req, badField("operator", "is required (it is recorded with the re-drive)")
	}
	if ferr := checkText("operator", req.Operator); ferr != nil {
		return req, ferr
	}
	if _, given := members["instanceId"]; given {
		if req.InstanceID == "" {
			return req, badField("instanceId", "must not be empty (omit it to re-drive every instance of the effect)")
		}
		if ferr := checkText("instanceId", req.InstanceID); ferr != nil {
			return req, ferr
		}
	}
	if req.EventSeq != 0 && req.InstanceID == "" {
		return req, badField("eventSeq", "needs instanceId (the instance whose parked event to re-drive)")
	}
	return req, nil
}
