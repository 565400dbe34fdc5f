package openapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"unicode/utf8"
)

// PathUpload is the string/file upload's path (outgoing.md §5), with
// {event_id} standing for the getLicenseAsync eventId.
const PathUpload = "/api/mkp-openapi-public/global/v1/market-event/{event_id}/file"

// Upload result codes (outgoing.md §9.3), the ResultCode of an *APIError.
// CodeUploadInternal and CodeUploadInnerError are temporary.
const (
	CodeUploadSuccess         = "CBC.0000"
	CodeUploadIllegalOp       = "CBC.0150" // 403: authentication failed
	CodeUploadInvalidParam    = "CBC.0101" // 400
	CodeUploadInternal        = "CBC.0999" // 500
	CodeUploadResourceInvalid = "91381033"
	CodeUploadApplyInvalid    = "91381034"
	CodeUploadNoRemain        = "91381035"
	CodeUploadInnerError      = "91381036"
	CodeUploadBadFormat       = "91381037"
	CodeUploadDenied          = "91381038"
	CodeUploadRoleDenied      = "91380150"
)

// UploadType is the upload's type field.
type UploadType string

// The upload types.
const (
	UploadCharacters UploadType = "CHARACTERS"
	UploadFile       UploadType = "FILE"
)

// MaxUploadCharacters is the longest License sent as CHARACTERS (String
// 1024); a longer one is sent as a file. Counted in bytes, the
// conservative reading.
const MaxUploadCharacters = 1024

// defaultLicenseFileName names a string License too long for CHARACTERS.
const defaultLicenseFileName = "license.lic"

// maxEventIDLen and maxFileNameLen are the documented lengths.
const (
	maxEventIDLen  = 64
	maxFileNameLen = 1024
)

// LicenseUpload is the License to deliver: a string (Text) or a file
// (FileName and File). The License is a secret of the buyer: it is never
// logged, only its type, size and SHA-256.
type LicenseUpload struct {
	// Text is a string License: sent as CHARACTERS when at most
	// MaxUploadCharacters bytes, else as a file named FileName (default
	// "license.lic").
	Text string
	// FileName and File are a file License (FileName required).
	FileName string
	File     []byte
}

// UploadReceipt is a successful upload.
type UploadReceipt struct {
	// Type is how the License was sent.
	Type UploadType
	// SHA256 is the lower-case hex SHA-256 sent with a FILE.
	SHA256     string
	ResultCode string
	ResultMsg  string
}

// UploadLicense delivers a License for a getLicenseAsync event (outgoing.md
// §5): POST PathUpload with event_id = eventID, multipart/form-data with the
// JSON part isvUpdateFileReq ({"type":"CHARACTERS","characters":…} or
// {"type":"FILE","file_name":…,"sha256":…}) and, for a file, the part file.
// The AK/SK signature covers the whole multipart body. It succeeds on HTTP
// 200 with error_code CBC.0000.
//
// Errors: ErrInvalidRequest for bad arguments; an error wrapping
// ErrTransport when no host answered; *APIError otherwise (see
// IsTemporary: CBC.0999 and 91381036 are temporary, the other codes are
// not). Re-sending the same License for the same event is safe.
func (c *Client) UploadLicense(ctx context.Context, eventID string, lic LicenseUpload) (UploadReceipt, error) {
	if err := checkEventID(eventID); err != nil {
		return UploadReceipt{}, err
	}
	meta := struct {
		Type       UploadType `json:"type"`
		FileName   string     `json:"file_name,omitempty"`
		SHA256     string     `json:"sha256,omitempty"`
		Characters string     `json:"characters,omitempty"`
	}{}
	var file []byte
	switch {
	case lic.File != nil && lic.Text != "":
		return UploadReceipt{}, fmt.Errorf("%w: upload: give Text or File, not both", ErrInvalidRequest)
	case lic.File != nil:
		if lic.FileName == "" {
			return UploadReceipt{}, fmt.Errorf("%w: upload: a file License needs FileName", ErrInvalidRequest)
		}
		meta.Type, meta.FileName, file = UploadFile, lic.FileName, lic.File
	case lic.Text == "":
		return UploadReceipt{}, fmt.Errorf("%w: upload: the License is empty", ErrInvalidRequest)
	case len(lic.Text) <= MaxUploadCharacters:
		meta.Type, meta.Characters = UploadCharacters, lic.Text
	default:
		meta.Type, meta.FileName, file = UploadFile, lic.FileName, []byte(lic.Text)
		if meta.FileName == "" {
			meta.FileName = defaultLicenseFileName
		}
	}
	if utf8.RuneCountInString(meta.FileName) > maxFileNameLen || strings.ContainsAny(meta.FileName, "\"\r\n") {
		return UploadReceipt{}, fmt.Errorf("%w: upload: FileName is at most %d characters, without quotes or line breaks", ErrInvalidRequest, maxFileNameLen)
	}
	if meta.Type == UploadFile {
		sum := sha256.Sum256(file)
		meta.SHA256 = hex.EncodeToString(sum[:])
	}
	body, contentType, err := uploadBody(meta, meta.FileName, file)
	if err != nil {
		return UploadReceipt{}, fmt.Errorf("%w: upload: %w", ErrInvalidRequest, err)
	}
	log := c.log.With("api", string(APIUpload), "eventId", eventID, "type", string(meta.Type), "size", len(file)+len(meta.Characters), "sha256", meta.SHA256)
	a, err := c.do(ctx, call{api: APIUpload, method: http.MethodPost, path: uploadPath(eventID), body: body, contentType: contentType})
	if err != nil {
		log.Warn("upload failed", "err", err)
		return UploadReceipt{}, err
	}
	fail := func(ae *APIError) (UploadReceipt, error) {
		log.Warn("upload failed", "host", a.host, "status", ae.HTTPStatus, "error_code", ae.ResultCode,
			"error_msg", ae.ResultMsg, "temporary", ae.Temporary(), "cause", ae.Err, "raw", logged(a.body))
		return UploadReceipt{}, ae
	}
	if a.status != http.StatusOK {
		return fail(apiErrorOf(APIUpload, a, nil))
	}
	top, ok := parseObject(a.body)
	if !ok {
		return fail(apiErrorOf(APIUpload, a, fmt.Errorf("%w: body is not a JSON object", ErrMalformedAnswer)))
	}
	if code := top.str("error_code"); code != CodeUploadSuccess {
		var cause error
		if code == "" {
			cause = fmt.Errorf("%w: no error_code", ErrMalformedAnswer)
		}
		return fail(apiErrorOf(APIUpload, a, cause))
	}
	out := UploadReceipt{Type: meta.Type, SHA256: meta.SHA256, ResultCode: top.str("error_code"), ResultMsg: top.str("error_msg")}
	log.Info("license uploaded", "host", a.host, "error_code", out.ResultCode)
	return out, nil
}

// uploadBody writes the multipart body: the part file (when file is not
// nil), then the part isvUpdateFileReq, as in the documented example.
func uploadBody(meta any, fileName string, file []byte) (body []byte, contentType string, err error) {
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(meta); err != nil {
		return nil, "", err
	}
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if file != nil {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+fileName+`"`)
		h.Set("Content-Type", "application/octet-stream")
		p, err := mw.CreatePart(h)
		if err != nil {
			return nil, "", err
		}
		if _, err := p.Write(file); err != nil {
			return nil, "", err
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="isvUpdateFileReq"`)
	h.Set("Content-Type", "application/json")
	p, err := mw.CreatePart(h)
	if err != nil {
		return nil, "", err
	}
	if _, err := p.Write(bytes.TrimSpace(js.Bytes())); err != nil {
		return nil, "", err
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return b.Bytes(), mw.FormDataContentType(), nil
}

func uploadPath(eventID string) string {
	return strings.Replace(PathUpload, "{event_id}", eventID, 1)
}

// checkEventID accepts 1 to 64 characters forming one path segment.
func checkEventID(id string) error {
	if id == "" || utf8.RuneCountInString(id) > maxEventIDLen || strings.Contains(id, "/") || id == "." || id == ".." {
		return fmt.Errorf("%w: upload: event id must be 1 to %d characters, one path segment", ErrInvalidRequest, maxEventIDLen)
	}
	return nil
}
