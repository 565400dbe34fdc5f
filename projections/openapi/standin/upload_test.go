package standin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"mime/multipart"
	"net/textproto"
	"testing"
	"time"
)

// multipartBody builds an upload body: the JSON part (when not empty) and
// the file part (when file is not nil).
func multipartBody(t *testing.T, jsonPart string, fileName string, file []byte) (ct string, body []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if file != nil {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="`+fileName+`"`)
		h.Set("Content-Type", "application/octet-stream")
		p, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = p.Write(file)
	}
	if jsonPart != "" {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="isvUpdateFileReq"`)
		h.Set("Content-Type", "application/json")
		p, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = p.Write([]byte(jsonPart))
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), b.Bytes()
}

func TestUploadAnswers(t *testing.T) {
	s, srv := start(t, Config{Credentials: map[string]string{ak: sk}})
	s.AddUploadEvent(UploadEvent{ID: "ev-denied", Outcome: CodeUploadDenied})
	s.AddUploadEvent(UploadEvent{ID: "ev-internal", Outcome: CodeUploadInternal})
	s.AddUploadEvent(UploadEvent{ID: "ev-owned", Owner: "AK2"})
	lic := []byte("-----BEGIN LICENSE-----\nabc\n-----END LICENSE-----\n")
	sum := sha256.Sum256(lic)
	hexSum := hex.EncodeToString(sum[:])
	long := string(bytes.Repeat([]byte("L"), 1025))
	for _, tc := range []struct {
		name, event, jsonPart string
		file                  []byte
		rawCT                 string
		signSK                string
		status                int
		code                  string
	}{
		{"characters", "ev-1", `{"type":"CHARACTERS","characters":"0078369f54-a3ce"}`, nil, "", sk, 200, CodeUploadSuccess},
		{"file", "ev-2", `{"type":"FILE","file_name":"a.lic","sha256":"` + hexSum + `"}`, lic, "", sk, 200, CodeUploadSuccess},
		{"file upper-case sha", "ev-2", `{"type":"FILE","file_name":"a.lic","sha256":"` + string(bytes.ToUpper([]byte(hexSum))) + `"}`, lic, "", sk, 200, CodeUploadSuccess},
		{"sha mismatch", "ev-3", `{"type":"FILE","file_name":"a.lic","sha256":"00"}`, lic, "", sk, 400, CodeUploadInvalidParam},
		{"file without name", "ev-3", `{"type":"FILE","sha256":"` + hexSum + `"}`, lic, "", sk, 400, CodeUploadInvalidParam},
		{"file without part", "ev-3", `{"type":"FILE","file_name":"a.lic","sha256":"` + hexSum + `"}`, nil, "", sk, 400, CodeUploadInvalidParam},
		{"characters too long", "ev-3", `{"type":"CHARACTERS","characters":"` + long + `"}`, nil, "", sk, 400, CodeUploadInvalidParam},
		{"no JSON part", "ev-3", "", lic, "", sk, 400, CodeUploadInvalidParam},
		{"bad type", "ev-3", `{"type":"TEXT","characters":"x"}`, nil, "", sk, 400, CodeUploadInvalidParam},
		{"wrong case", "ev-3", `{"Type":"CHARACTERS","characters":"x"}`, nil, "", sk, 400, CodeUploadInvalidParam},
		{"not multipart", "ev-3", `{"type":"CHARACTERS","characters":"x"}`, nil, "application/json", sk, 400, CodeUploadInvalidParam},
		{"denied", "ev-denied", `{"type":"CHARACTERS","characters":"x"}`, nil, "", sk, 200, CodeUploadDenied},
		{"internal", "ev-internal", `{"type":"CHARACTERS","characters":"x"}`, nil, "", sk, 500, CodeUploadInternal},
		{"other owner", "ev-owned", `{"type":"CHARACTERS","characters":"x"}`, nil, "", sk, 200, CodeUploadRoleDenied},
		{"bad signature", "ev-1", `{"type":"CHARACTERS","characters":"x"}`, nil, "", "wrong", 401, CodeAuthFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct, body := multipartBody(t, tc.jsonPart, "a.lic", tc.file)
			if tc.rawCT != "" {
				ct, body = tc.rawCT, []byte(tc.jsonPart)
			}
			status, ans := postSigned(t, srv, "POST", UploadPath(tc.event), ct, body, ak, tc.signSK, time.Now())
			if status != tc.status || ans["error_code"] != tc.code {
				t.Fatalf("%d %v", status, ans)
			}
		})
	}
	ups := s.Uploads()
	if len(ups) != 3 || ups[0].EventID != "ev-1" || ups[0].Type != UploadCharacters || ups[0].Characters != "0078369f54-a3ce" ||
		ups[1].Type != UploadFile || !bytes.Equal(ups[1].File, lic) || ups[1].FileName != "a.lic" || ups[1].AK != ak {
		t.Errorf("uploads %+v", ups)
	}

	s.SetStrictUploads(true)
	ct, body := multipartBody(t, `{"type":"CHARACTERS","characters":"x"}`, "", nil)
	if status, ans := postSigned(t, srv, "POST", UploadPath("ev-unknown"), ct, body, ak, sk, time.Now()); status != 200 || ans["error_code"] != CodeUploadApplyInvalid {
		t.Errorf("strict: %d %v", status, ans)
	}
}
