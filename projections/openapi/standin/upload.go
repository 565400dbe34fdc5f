package standin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// PathUpload is the string/file upload's path pattern (outgoing.md §5);
// UploadPath gives one event's path.
const PathUpload = "/api/mkp-openapi-public/global/v1/market-event/{event_id}/file"

// UploadPath returns the upload path of eventID (not escaped).
func UploadPath(eventID string) string {
	return strings.Replace(PathUpload, "{event_id}", eventID, 1)
}

// Upload result codes (outgoing.md §9.3), with the HTTP status the stand-in
// answers them with (uploadStatus) and the documented error_msg
// (uploadMsgs).
const (
	CodeUploadSuccess         = "CBC.0000" // 200
	CodeUploadIllegalOp       = "CBC.0150" // 403: authentication failed
	CodeUploadInvalidParam    = "CBC.0101" // 400: invalid parameter
	CodeUploadInternal        = "CBC.0999" // 500: internal error
	CodeUploadResourceInvalid = "91381033" // 200: License resource unavailable
	CodeUploadApplyInvalid    = "91381034" // 200: the user's License application is invalid
	CodeUploadNoRemain        = "91381035" // 200: no remaining quota in the License period
	CodeUploadInnerError      = "91381036" // 200: internal error
	CodeUploadBadFormat       = "91381037" // 200: License format incorrect
	CodeUploadDenied          = "91381038" // 200: License application already refused
	CodeUploadRoleDenied      = "91380150" // 200: no permission (role)
)

var uploadMsgs = map[string]string{
	CodeUploadSuccess:         "Success",
	CodeUploadIllegalOp:       "Illegal operation",
	CodeUploadInvalidParam:    "Invalid parameter",
	CodeUploadInternal:        "internal error",
	CodeUploadResourceInvalid: "License resource invalid",
	CodeUploadApplyInvalid:    "license apply invalid",
	CodeUploadNoRemain:        "license period has no remain amount",
	CodeUploadInnerError:      "inner error",
	CodeUploadBadFormat:       "Invalid license format.",
	CodeUploadDenied:          "License apply has been denied.",
	CodeUploadRoleDenied:      "Role permission denied",
}

var uploadStatus = map[string]int{
	CodeUploadIllegalOp:    http.StatusForbidden,
	CodeUploadInvalidParam: http.StatusBadRequest,
	CodeUploadInternal:     http.StatusInternalServerError,
}

// Upload types and limits (outgoing.md §5).
const (
	UploadCharacters = "CHARACTERS"
	UploadFile       = "FILE"
	maxEventIDLen    = 64
	maxUploadText    = 1024 // characters, file_name, sha256
	maxKeptUploads   = 100
)

// UploadEvent is a License application (a getLicenseAsync eventId) the
// stand-in knows. By default any event id is accepted; SetStrictUploads
// makes unknown ones answer CodeUploadApplyInvalid.
type UploadEvent struct {
	// ID is the event_id.
	ID string
	// Owner, when set, is the only AK that may upload for the event;
	// another (verified) AK gets CodeUploadRoleDenied.
	Owner string
	// Outcome, when set, is the documented upload code (outgoing.md §9.3)
	// every upload for the event is answered with, e.g. CodeUploadDenied or
	// CodeUploadNoRemain; its HTTP status is the documented one. Nothing is
	// recorded for an upload answered with a code other than
	// CodeUploadSuccess.
	Outcome string
}

// Upload is one accepted upload.
type Upload struct {
	Time    time.Time
	AK      string
	EventID string
	// Type is UploadCharacters or UploadFile.
	Type string
	// Characters is the string License (CHARACTERS).
	Characters string
	// FileName, SHA256 (as sent) and File are the file License (FILE).
	FileName string
	SHA256   string
	File     []byte
}

// uploadState is the upload registry, guarded by its own lock.
type uploadState struct {
	mu      sync.Mutex
	strict  bool
	events  map[string]UploadEvent
	uploads []Upload
}

func newUploadState() *uploadState { return &uploadState{events: map[string]UploadEvent{}} }

// AddUploadEvent makes the stand-in know e (replacing an event with the
// same ID).
func (s *Server) AddUploadEvent(e UploadEvent) {
	s.up.mu.Lock()
	defer s.up.mu.Unlock()
	s.up.events[e.ID] = e
}

// SetStrictUploads makes uploads for an event not added with AddUploadEvent
// answer CodeUploadApplyInvalid (strict) or be accepted (the default).
func (s *Server) SetStrictUploads(strict bool) {
	s.up.mu.Lock()
	defer s.up.mu.Unlock()
	s.up.strict = strict
}

// Uploads returns the accepted uploads, oldest first (at most the last
// 100). A re-sent upload is recorded again.
func (s *Server) Uploads() []Upload {
	s.up.mu.Lock()
	defer s.up.mu.Unlock()
	out := slices.Clone(s.up.uploads)
	for i := range out {
		out[i].File = slices.Clone(out[i].File)
	}
	return out
}

// uploadAnswer is the upload's answer body.
type uploadAnswer struct {
	ErrorCode string `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
}

func writeUpload(w http.ResponseWriter, code, detail string) {
	status, ok := uploadStatus[code]
	if !ok {
		status = http.StatusOK
	}
	msg := uploadMsgs[code]
	if detail != "" {
		msg += ": " + detail
	}
	writeJSON(w, status, uploadAnswer{ErrorCode: code, ErrorMsg: msg})
}

// uploadRequest is the JSON part isvUpdateFileReq.
type uploadRequest struct {
	Type       string `json:"type"`
	FileName   string `json:"file_name"`
	SHA256     string `json:"sha256"`
	Characters string `json:"characters"`
}

// upload serves POST PathUpload (outgoing.md §5): multipart/form-data with
// the JSON part isvUpdateFileReq and, for FILE, the part file.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	eventID := r.PathValue("event_id")
	if eventID == "" || len([]rune(eventID)) > maxEventIDLen {
		writeUpload(w, CodeUploadInvalidParam, fmt.Sprintf("event_id must be 1 to %d characters", maxEventIDLen))
		return
	}
	req, file, hasFile, detail := readUpload(r)
	if detail != "" {
		writeUpload(w, CodeUploadInvalidParam, detail)
		return
	}
	up := Upload{AK: akOf(r), EventID: eventID, Type: req.Type}
	switch req.Type {
	case UploadCharacters:
		switch {
		case req.Characters == "":
			writeUpload(w, CodeUploadInvalidParam, "characters is required when type is CHARACTERS")
			return
		case len([]rune(req.Characters)) > maxUploadText:
			writeUpload(w, CodeUploadInvalidParam, fmt.Sprintf("characters is longer than %d characters", maxUploadText))
			return
		}
		up.Characters = req.Characters
	case UploadFile:
		sum := sha256.Sum256(file)
		switch {
		case req.FileName == "" || len([]rune(req.FileName)) > maxUploadText:
			writeUpload(w, CodeUploadInvalidParam, fmt.Sprintf("file_name is required when type is FILE (at most %d characters)", maxUploadText))
			return
		case !hasFile:
			writeUpload(w, CodeUploadInvalidParam, "the part file is required when type is FILE")
			return
		case req.SHA256 == "" || len(req.SHA256) > maxUploadText:
			writeUpload(w, CodeUploadInvalidParam, "sha256 is required when type is FILE")
			return
		case !strings.EqualFold(req.SHA256, hex.EncodeToString(sum[:])):
			writeUpload(w, CodeUploadInvalidParam, "sha256 does not match the file")
			return
		case len(file) == 0:
			writeUpload(w, CodeUploadBadFormat, "the file is empty")
			return
		}
		up.FileName, up.SHA256, up.File = req.FileName, req.SHA256, file
	default:
		writeUpload(w, CodeUploadInvalidParam, `type must be "CHARACTERS" or "FILE"`)
		return
	}
	s.up.mu.Lock()
	defer s.up.mu.Unlock()
	e, known := s.up.events[eventID]
	switch {
	case !known && s.up.strict:
		writeUpload(w, CodeUploadApplyInvalid, "unknown event_id")
		return
	case e.Owner != "" && e.Owner != up.AK:
		writeUpload(w, CodeUploadRoleDenied, "the event belongs to another account")
		return
	case e.Outcome != "" && e.Outcome != CodeUploadSuccess:
		writeUpload(w, e.Outcome, "")
		return
	}
	up.Time = s.clock()
	s.up.uploads = append(s.up.uploads, up)
	if len(s.up.uploads) > maxKeptUploads {
		s.up.uploads = slices.Delete(s.up.uploads, 0, len(s.up.uploads)-maxKeptUploads)
	}
	writeUpload(w, CodeUploadSuccess, "")
}

// readUpload reads the multipart body: the JSON part isvUpdateFileReq
// (decoded strictly, names case-sensitive) and the part file. detail says
// why the request is not readable.
func readUpload(r *http.Request) (req uploadRequest, file []byte, hasFile bool, detail string) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return req, nil, false, "Content-Type must be multipart/form-data with a boundary"
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	var jsonPart []byte
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return req, nil, false, "malformed multipart body"
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return req, nil, false, "malformed multipart body"
		}
		switch p.FormName() {
		case "isvUpdateFileReq":
			jsonPart = b
		case "file":
			file, hasFile = b, true
		}
	}
	if jsonPart == nil {
		return req, nil, false, "the part isvUpdateFileReq is required"
	}
	b := bytes.TrimSpace(jsonPart)
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &req) != nil {
		return req, nil, false, "isvUpdateFileReq is not a JSON object of type, file_name, sha256 and characters (all strings)"
	}
	if name, ok := walkCase(b, [][]string{{"type", "file_name", "sha256", "characters"}}); !ok {
		return req, nil, false, fmt.Sprintf("unknown member %q in isvUpdateFileReq (names are case-sensitive)", name)
	}
	return req, file, hasFile, ""
}
