package kg

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// Family names accepted by --family.
const (
	FamilySaaSV2   = "saas-v2"
	FamilySaaSV1   = "saas-v1"
	FamilyLicenseA = "license-a"
	FamilyLicenseB = "license-b"
	FamilyLicenseC = "license-c"
	// FamilyAll (kg conformance only) runs every route of --config.
	FamilyAll = "all"
)

// familyNames lists the --family values of one production address.
var familyNames = []string{FamilySaaSV2, FamilySaaSV1, FamilyLicenseA, FamilyLicenseB, FamilyLicenseC}

// Message is the business content of one call, before signing.
type Message struct {
	// Body is the JSON body of a SaaS V2 call.
	Body []byte
	// Params are the parameters of a SaaS V1 call, without timeStamp and
	// authToken (a timeStamp given here is kept).
	Params url.Values
}

// Prepared is one signed call, ready to send.
type Prepared struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// Request returns a new HTTP request for p.
func (p Prepared) Request(ctx context.Context) (*http.Request, error) {
	var body io.Reader = http.NoBody
	if p.Body != nil {
		body = bytes.NewReader(p.Body)
	}
	req, err := http.NewRequestWithContext(ctx, p.Method, p.URL, body)
	if err != nil {
		return nil, fmt.Errorf("kg: build request: %w", err)
	}
	for k, vs := range p.Header {
		req.Header[k] = vs
	}
	return req, nil
}

// Family is one KooGallery product family as seen from KooGallery's side:
// how its calls are built and signed. A Family is safe for concurrent use.
type Family interface {
	// Name is the family's --family name.
	Name() string
	// Build makes a plausible call of activity; fields override or add
	// members. test marks a debug call (testFlag "1").
	Build(activity string, fields map[string]string, test bool, now time.Time) (Message, error)
	// Raw makes a call of exactly this JSON body (--body).
	Raw(body []byte) (Message, error)
	// Sign returns the signed request of m toward the production address
	// base, signed at now.
	Sign(base *url.URL, m Message, now time.Time) (Prepared, error)
}

// newFamily returns the named family (default saas-v2) with its key.
func newFamily(name string, key []byte, encryptType koogallery.EncryptType) (Family, error) {
	switch name {
	case "", FamilySaaSV2:
		return &v2Family{name: FamilySaaSV2, key: key, nonce: koogallery.NewNonce}, nil
	case FamilyLicenseB, FamilyLicenseC:
		return &v2Family{name: name, key: key, nonce: koogallery.NewNonce}, nil
	case FamilySaaSV1, FamilyLicenseA:
		c, err := koogallery.NewCipher(key, encryptType)
		if err != nil {
			return nil, fmt.Errorf("--family %s: %w", name, err)
		}
		return &v1Family{name: name, key: key, cipher: c, method: http.MethodGet}, nil
	}
	return nil, fmt.Errorf("--family %q: want one of %s", name, strings.Join(familyNames, ", "))
}

// ---- SaaS V2 ----

// v2Family signs like KooGallery's SaaS V2 (auth.md §2): POST, JSON body,
// signature/timestamp/nonce in the query (payload form a).
type v2Family struct {
	name  string // saas-v2, license-b or license-c
	key   []byte
	nonce func() string
}

func (f *v2Family) Name() string {
	if f.name == "" {
		return FamilySaaSV2
	}
	return f.name
}

func (f *v2Family) Raw(body []byte) (Message, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return Message{}, fmt.Errorf("--body is not a JSON object: %w", err)
	}
	return Message{Body: body}, nil
}

// v2Defaults are plausible values per activity; "" marks what must come
// from --field (an existing instance).
func v2Defaults(order, business string, now time.Time) map[string]map[string]string {
	return map[string]map[string]string{
		"newInstance":          {"orderId": order, "orderLineId": order + "-000001", "businessId": business},
		"queryInstance":        {"instanceId": ""},
		"refreshInstance":      {"scene": "RENEWAL", "orderId": order, "orderLineId": order + "-000001", "instanceId": "", "expireTime": now.UTC().AddDate(1, 0, 0).Format("20060102150405") + "000"},
		"updateInstanceStatus": {"instanceId": "", "status": "FREEZE"},
		"releaseInstance":      {"instanceId": ""},
		"upgradeInstance":      {"instanceId": "", "orderId": order, "orderLineId": order + "-000001"},
		"changeInstanceCheck":  {"instanceId": ""},
		"orderNotify":          {"orderId": order, "orderLineId": order + "-000001"},
	}
}

func (f *v2Family) Build(activity string, fields map[string]string, test bool, now time.Time) (Message, error) {
	order := "CS" + strings.ToUpper(randomText(13))
	all := v2Defaults(order, uuidText(), now)
	switch f.name {
	case FamilyLicenseB:
		all = licenseBDefaults(order, now)
	case FamilyLicenseC:
		all = licenseCDefaults(order, uuidText(), now)
	}
	def, err := defaultsOf(all, activity)
	if err != nil {
		return Message{}, err
	}
	b := map[string]any{"activity": activity}
	if err := merge(b, def, fields, activity); err != nil {
		return Message{}, err
	}
	if activity == "changeInstanceCheck" {
		if _, ok := fields["productInfo"]; !ok {
			b["productInfo"] = map[string]string{"productId": "OFFI000000000001", "skuCode": "sku-demo", "productName": "demo"}
		}
	}
	if test {
		b["testFlag"] = "1"
	}
	body, err := json.Marshal(b) // members sorted: forms (a), (b) and (c) agree
	if err != nil {
		return Message{}, fmt.Errorf("kg: encode body: %w", err)
	}
	return Message{Body: body}, nil
}

func (f *v2Family) Sign(base *url.URL, m Message, now time.Time) (Prepared, error) {
	if m.Body == nil {
		return Prepared{}, errors.New("kg: a SaaS V2 call needs a body")
	}
	u := *base
	u.RawQuery = koogallery.SignV2Request(f.key, m.Body, now, f.nonce()).Encode()
	return Prepared{
		Method: http.MethodPost,
		URL:    u.String(),
		Header: http.Header{"Content-Type": {"application/json;charset=utf8"}, "Accept": {"application/json"}},
		Body:   m.Body,
	}, nil
}

// ---- SaaS V1 ----

// v1Family signs like KooGallery's SaaS V1 (auth.md §3): GET with every
// parameter URL-encoded in the query plus timeStamp and authToken, or the
// POST-body variant (JSON body, authToken header).
type v1Family struct {
	name   string // saas-v1 or license-a
	key    []byte
	cipher *koogallery.Cipher // encrypts mobilePhone/email as KooGallery does
	method string             // GET or POST
}

func (f *v1Family) Name() string {
	if f.name == "" {
		return FamilySaaSV1
	}
	return f.name
}

func v1Defaults(order, business string, now time.Time) map[string]map[string]string {
	return map[string]map[string]string{
		"newInstance": {"customerId": strings.ReplaceAll(uuidText(), "-", ""), "customerName": "demo-buyer", "businessId": business,
			"orderId": order, "productId": "00301-000001-0--0", "skuCode": "sku-demo", "chargingMode": "1",
			"periodType": "month", "periodNumber": "1", "expireTime": now.UTC().AddDate(0, 1, 0).Format("20060102150405")},
		"refreshInstance": {"orderId": order, "instanceId": "", "expireTime": now.UTC().AddDate(1, 0, 0).Format("20060102150405")},
		"expireInstance":  {"instanceId": "", "orderId": ""},
		"releaseInstance": {"instanceId": "", "orderId": ""},
		"upgrade":         {"instanceId": "", "orderId": order, "skuCode": "sku-demo-2", "productId": "00301-000002-0--0"},
		"instanceStatus":  {"instanceId": "", "instanceStatus": "FREEZE"},
		"queryInstance":   {"instanceId": ""},
	}
}

func (f *v1Family) Build(activity string, fields map[string]string, test bool, now time.Time) (Message, error) {
	order := "CS" + strings.ToUpper(randomText(13))
	all := v1Defaults(order, uuidText(), now)
	if f.name == FamilyLicenseA {
		all = licenseADefaults(order, uuidText(), now)
	}
	def, err := defaultsOf(all, activity)
	if err != nil {
		return Message{}, err
	}
	b := map[string]any{"activity": activity}
	if err := merge(b, def, fields, activity); err != nil {
		return Message{}, err
	}
	p := url.Values{}
	for k, v := range b {
		p.Set(k, v.(string))
	}
	// KooGallery sends the buyer's phone and e-mail encrypted (auth.md §5.1).
	for _, name := range []string{"mobilePhone", "email"} {
		if v := p.Get(name); v != "" {
			ct, err := f.cipher.Encrypt(v)
			if err != nil {
				return Message{}, fmt.Errorf("--field %s: %w", name, err)
			}
			p.Set(name, ct)
		}
	}
	if test {
		p.Set("testFlag", "1")
	}
	return Message{Params: p}, nil
}

func (f *v1Family) Raw(body []byte) (Message, error) {
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return Message{}, fmt.Errorf("--body is not a JSON object: %w", err)
	}
	p := url.Values{}
	for k, v := range obj {
		switch v := v.(type) {
		case string:
			p.Set(k, v)
		case json.Number:
			p.Set(k, v.String())
		case bool:
			p.Set(k, fmt.Sprint(v))
		default:
			return Message{}, fmt.Errorf("--body member %q: a SaaS V1 parameter must be a string or number", k)
		}
	}
	return Message{Params: p}, nil
}

func (f *v1Family) Sign(base *url.URL, m Message, now time.Time) (Prepared, error) {
	if m.Params == nil {
		return Prepared{}, errors.New("kg: a SaaS V1 call needs parameters")
	}
	p := url.Values{}
	for k, vs := range m.Params {
		if k != "authToken" && len(vs) > 0 {
			p.Set(k, vs[0])
		}
	}
	ts := p.Get("timeStamp")
	if ts == "" {
		ts = koogallery.FormatV1TimeStamp(now)
		p.Set("timeStamp", ts)
	}
	u := *base
	if f.method == http.MethodPost {
		body := make(map[string]string, len(p))
		for k := range p {
			body[k] = p.Get(k)
		}
		raw, err := json.Marshal(body)
		if err != nil {
			return Prepared{}, fmt.Errorf("kg: encode body: %w", err)
		}
		tok := koogallery.AuthTokenBody(f.key, body)
		return Prepared{
			Method: http.MethodPost,
			URL:    u.String(),
			Header: http.Header{"Content-Type": {"application/json"}, "Authtoken": {`"` + tok + `"`}},
			Body:   raw,
		}, nil
	}
	tok := koogallery.AuthToken(f.key, ts, p)
	u.RawQuery = p.Encode() + "&authToken=" + url.QueryEscape(tok)
	return Prepared{Method: http.MethodGet, URL: u.String(), Header: http.Header{"Accept": {"application/json"}}}, nil
}

// ---- shared helpers ----

func defaultsOf(all map[string]map[string]string, activity string) (map[string]string, error) {
	def, ok := all[activity]
	if !ok {
		names := make([]string, 0, len(all))
		for n := range all {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("--activity %q is unknown (one of %s)", activity, strings.Join(names, ", "))
	}
	return def, nil
}

// merge fills b with the defaults, then the fields; a default left empty
// must be given as a field.
func merge(b map[string]any, def, fields map[string]string, activity string) error {
	for k, v := range def {
		b[k] = v
	}
	for k, v := range fields {
		b[k] = v
	}
	names := make([]string, 0, len(b))
	for k, v := range b {
		if v == "" {
			names = append(names, k)
		}
	}
	if len(names) > 0 {
		sort.Strings(names)
		return fmt.Errorf("%s needs --field %s=…", activity, strings.Join(names, "=… --field "))
	}
	return nil
}

func randomText(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

func uuidText() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
