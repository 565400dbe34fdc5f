// Package openapi is Gallerist's client for KooGallery's open APIs, the calls
// the vendor makes to KooGallery (spec/outgoing.md): Query Order (§2,
// queryorder.go), the string/file upload of a License (§5, upload.go) and
// the License B authorization-code APIs (§6–§8, licensecode.go), one file
// per API on top of the shared transport in client.go.
//
// Transport rules (outgoing.md §1):
//   - HTTPS only, the server certificate verified strictly. There is no
//     skip-verify switch: a Config whose HTTPClient skips verification is
//     rejected. Tests use httptest.NewTLSServer and pass its client (which
//     trusts the test certificate) as Config.HTTPClient.
//   - Each API has an ordered host list (first primary) per site. The next
//     host is tried only on a transport failure (DNS, connect, TLS,
//     timeout) or an HTTP 502/503/504; an answer with an error code is
//     final and never retried on another host.
//   - Requests are signed with the account's AK/SK (API Gateway
//     SDK-HMAC-SHA256, auth.md §8) by koogallery.SignAKSK.
//   - Responses are decoded tolerantly (unknown fields ignored, scalars
//     accepted as strings or numbers); the raw answer is logged on every
//     failure. The SK and the Authorization header are never logged and
//     never appear in errors; Config redacts the SK in String, GoString
//     and LogValue.
//
// Retrying across time (backoff) is not the client's job: it returns
// errors that say whether a retry can help (ErrTransport,
// (*APIError).Temporary) and the effects runner retries.
package openapi
