package server

import (
	"net/url"
	"testing"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

// FuzzV1Query fuzzes the SaaS V1 query parser with two properties:
//
//  1. For any raw query, the parser agrees with the kit's verifier on
//     accepting it, and when it accepts, the parameters it hands to the
//     activities are exactly the ones the token covers: re-signing them
//     with the key that verified gives the token received. (No value the
//     business logic reads escapes the signature.)
//  2. A query built from arbitrary names and values, signed and encoded as
//     KooGallery sends it, is accepted and yields those values.
func FuzzV1Query(f *testing.F) {
	for _, s := range []string{
		"activity=newInstance&businessId=61e834ba-7b97-4418-b8f7-e5345137278c&customerId=68cbc86abc2018ab880d92f36422fa0e&expireTime=20200727153156&orderId=CS1906666666ABCDE&productId=00301-666666-0--0&testFlag=1&timeStamp=20200727073711903&authToken=Yo8569XTGL32Q9VPKu49b%2BDrHvoZnjykFxfaSLZIw%2FY%3D",
		"activity=newInstance&businessId=61e834ba-7b97-4418-b8f7-e5345137278c&customerId=68cbc86abc2018ab880d92f36422fa0e&expireTime=20200727153156&orderId=CS1906666666ABCDE&productId=00301-666666-0--0&testFlag=1&timeStamp=20200727073711903&authToken=Yo8569XTGL32Q9VPKu49b+DrHvoZnjykFxfaSLZIw/Y=",
		"activity=queryInstance&instanceId=a%2Cb&timeStamp=1&authToken=x&authToken=y",
		"a=%zz&timeStamp=1&authToken=x", "a;b=1&timeStamp=2&authToken=+", "=&&==&timeStamp=&authToken=", "",
	} {
		f.Add(s, "saasExtendParams", "W3sibmFtZSI6ImEiLCJ2YWx1ZSI6Ij4/In1d+/=")
	}
	f.Add("timeStamp=1", "mobilePhone", "abc+def ghi%2B%")
	keys := [][]byte{[]byte("V1-OLD-KEY"), []byte("TEST-ACCESS-KEY-0123456789")}
	f.Fuzz(func(t *testing.T, raw, name, value string) {
		// 1. Any query.
		a, err := parseV1Query(keys, raw)
		kitOK := false
		for _, k := range keys {
			if _, kerr := koogallery.VerifyAuthTokenQuery(k, raw); kerr == nil {
				kitOK = true
			}
		}
		if (err == nil) != kitOK {
			t.Fatalf("parser accepted=%v, kit accepted=%v for %q", err == nil, kitOK, raw)
		}
		if err == nil {
			if _, has := a.params["authToken"]; has {
				t.Fatal("authToken handed to the activities")
			}
			q := url.Values{}
			for k, v := range a.params {
				q.Set(k, v)
			}
			if got := koogallery.AuthToken(keys[a.keyIdx], a.params["timeStamp"], q); got != a.token {
				t.Fatalf("params %v re-sign to %q, token was %q", a.params, got, a.token)
			}
		} else if koogallery.CodeOf(err) != koogallery.CodeAuthFailed && koogallery.CodeOf(err) != koogallery.CodeInvalidParam {
			t.Fatalf("error %v maps to %s", err, koogallery.CodeOf(err))
		}
		// 2. A well-formed signed query round-trips.
		if name == "" || name == "authToken" || name == "timeStamp" {
			return
		}
		q := url.Values{"activity": {"queryInstance"}, "timeStamp": {"20230327065233980"}}
		q.Set(name, value)
		q.Set("authToken", koogallery.AuthToken(keys[1], "20230327065233980", q))
		a, err = parseV1Query(keys, q.Encode())
		if err != nil {
			t.Fatalf("signed query %q refused: %v", q.Encode(), err)
		}
		if a.keyIdx != 1 || a.params[name] != value || a.params["activity"] != "queryInstance" {
			t.Fatalf("signed query %q parsed to %v (key %d)", q.Encode(), a.params, a.keyIdx)
		}
	})
}
