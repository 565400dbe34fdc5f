// Package koogallery is Gallerist's protocol kit for Huawei Cloud KooGallery's
// "production interface" (生产接口): result codes, the V2 request signature,
// the V1 authToken, the Body-Sign response header, AES field encryption,
// \uXXXX escaping of responses, the usage-push signature, API Gateway AK/SK
// signing and a few value formats.
//
// The package is shared by the HTTP ingress and by the KooGallery emulator, so
// it has both the verifying and the signing side of every algorithm. It is
// pure Go on top of the standard library: no HTTP framework, no I/O, and no
// package-level mutable state. Every algorithm follows the protocol spec
// (auth.md, codes-and-rules.md); every test vector of vectors.md is checked
// by the tests.
//
// Typical use on the request path of a SaaS V2, License B or License C
// endpoint:
//
//	v := &koogallery.V2Verifier{Keys: [][]byte{key}}
//	res, err := v.Verify(r.URL.Query(), body)
//	if err != nil {
//		// answer koogallery.CodeOf(err) with koogallery.MessageOf(err)
//	}
//	// then reject res.Nonce if it was seen within 2×Window (auth.md §2.4)
//
// and on the response path:
//
//	out, _ := koogallery.MarshalResponse(resp)
//	w.Header().Set(koogallery.BodySignHeader, koogallery.BodySignValue(key, out))
//	w.Write(out)
package koogallery
