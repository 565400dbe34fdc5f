package koogallery_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

const (
	v1TimeStamp = "20200727073711903"
	v1Sorted    = "activity=newInstance&businessId=61e834ba-7b97-4418-b8f7-e5345137278c&customerId=68cbc86abc2018ab880d92f36422fa0e&expireTime=20200727153156&orderId=CS1906666666ABCDE&productId=00301-666666-0--0&testFlag=1&timeStamp=20200727073711903"
	v1Token     = "Yo8569XTGL32Q9VPKu49b+DrHvoZnjykFxfaSLZIw/Y="
	v1Encoded   = "activity=newInstance&businessId=61e834ba-7b97-4418-b8f7-e5345137278c&customerId=68cbc86abc2018ab880d92f36422fa0e&expireTime=20200727153156&orderId=CS1906666666ABCDE&productId=00301-666666-0--0&testFlag=1&timeStamp=20200727073711903&authToken=Yo8569XTGL32Q9VPKu49b%2BDrHvoZnjykFxfaSLZIw%2FY%3D"
)

// vectors.md §4.
func TestAuthTokenVector(t *testing.T) {
	q, err := url.ParseQuery(v1Encoded)
	if err != nil {
		t.Fatal(err)
	}
	if got := koogallery.AuthTokenSortedString(q); got != v1Sorted {
		t.Fatalf("sorted string:\n got %s\nwant %s", got, v1Sorted)
	}
	if got := koogallery.AuthToken(key(), v1TimeStamp, q); got != v1Token {
		t.Fatalf("authToken = %s, want %s", got, v1Token)
	}
	// The HMAC key is Key + timeStamp: the same token from the concatenated key
	// with an empty suffix.
	if got := koogallery.AuthToken([]byte(testKey+v1TimeStamp), "", q); got != v1Token {
		t.Fatalf("HMAC key is not Key+timeStamp: %s", got)
	}
	// AuthToken must not write into the caller's key.
	k := make([]byte, len(testKey), len(testKey)+64)
	copy(k, testKey)
	_ = koogallery.AuthToken(k, v1TimeStamp, q)
	if string(k[:cap(k)][len(testKey):len(testKey)+len(v1TimeStamp)]) == v1TimeStamp {
		t.Fatal("AuthToken appended to the caller's key slice")
	}
}

func TestVerifyAuthTokenQueryForms(t *testing.T) {
	raw := strings.Replace(v1Encoded, "Yo8569XTGL32Q9VPKu49b%2BDrHvoZnjykFxfaSLZIw%2FY%3D", v1Token, 1)
	pairs := strings.Split(v1Encoded, "&")
	reversed := make([]string, len(pairs))
	for i, p := range pairs {
		reversed[len(pairs)-1-i] = p
	}
	for _, tc := range []struct {
		name, query, decoding string
	}{
		{"1. URL-encoded as KooGallery sends it", v1Encoded, koogallery.DecodingForm},
		{"2. raw token with + and /", raw, koogallery.DecodingForm},
		{"3. any parameter order", strings.Join(reversed, "&"), koogallery.DecodingForm},
		{"token first", "authToken=" + url.QueryEscape(v1Token) + "&" + strings.Join(pairs[:len(pairs)-1], "&"), koogallery.DecodingForm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := koogallery.VerifyAuthTokenQuery(key(), tc.query)
			if err != nil {
				t.Fatal(err)
			}
			if d != tc.decoding {
				t.Fatalf("decoding = %q, want %q", d, tc.decoding)
			}
		})
	}

	// A raw '+' inside a signed Base64 value needs the percent-only pass.
	params := url.Values{}
	params.Set("activity", "newInstance")
	params.Set("saasExtendParams", "W3s+bmFtZSI6/ImlkTnVtIn0=")
	params.Set("timeStamp", v1TimeStamp)
	tok := koogallery.AuthToken(key(), v1TimeStamp, params)
	rawPlus := "activity=newInstance&saasExtendParams=W3s+bmFtZSI6/ImlkTnVtIn0=&timeStamp=" + v1TimeStamp + "&authToken=" + url.QueryEscape(tok)
	d, err := koogallery.VerifyAuthTokenQuery(key(), rawPlus)
	if err != nil || d != koogallery.DecodingPercent {
		t.Fatalf("percent pass: %q, %v", d, err)
	}
}

func TestVerifyAuthTokenQueryFailures(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		code        koogallery.Code
		field       string
	}{
		{"parameter value changed", strings.Replace(v1Encoded, "testFlag=1", "testFlag=0", 1), koogallery.CodeAuthFailed, ""},
		{"parameter added without re-signing", v1Encoded + "&provisionType=1", koogallery.CodeAuthFailed, ""},
		{"token with a different timeStamp", strings.Replace(v1Encoded, v1TimeStamp, "20200727073711904", 1), koogallery.CodeAuthFailed, ""},
		{"token case changed", strings.Replace(v1Encoded, "Yo8569", "yo8569", 1), koogallery.CodeAuthFailed, ""},
		{"empty parameter value changed", v1Encoded + "&x=", koogallery.CodeAuthFailed, ""},
		{"authToken missing", strings.Split(v1Encoded, "&authToken=")[0], koogallery.CodeAuthFailed, ""},
		{"authToken empty", strings.Split(v1Encoded, "&authToken=")[0] + "&authToken=", koogallery.CodeAuthFailed, ""},
		{"timeStamp missing", strings.Replace(v1Encoded, "&timeStamp=20200727073711903", "", 1), koogallery.CodeInvalidParam, "timeStamp"},
		{"undecodable query", "a=%zz&timeStamp=1&authToken=x", koogallery.CodeInvalidParam, "query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := koogallery.VerifyAuthTokenQuery(key(), tc.query)
			wantCode(t, err, tc.code)
			if tc.field != "" {
				wantField(t, err, tc.field)
			}
		})
	}
}

// vectors.md §11.3: the documented V1 URLs do not verify with the test key.
func TestAuthTokenDocumentedExamplesFail(t *testing.T) {
	for _, raw := range []string{
		"https://example.isv.com?activity=refreshInstance&expireTime=20180725000000&instanceId=03pf80c2bae96vc49b80b917bea776d7&orderId=HWS001014ED483AA1E8&timeStamp=20170725025113409&testFlag=1&authToken=09lsS5y+KCtxBu+ON4TXv1SrjH5KVYka9sx2MauHrQU=",
		"https://example.isv.com?activity=expireInstance&instanceId=03pf80c2bae96vc49b80b917bea776d7&timeStamp=20170725025113409&testFlag=0&authToken=09lsS5y+KCtxBu+ON4TXv1SrjH5KVYka9sx2MauHrQU=",
		"https://isvserver.com/produceAPI?activity=releaseInstance&instanceId=03pf80c2bae96vc49b80b917bea776d7&timeStamp=20170725025113409&testFlag=0&authToken=09lsS5y+KCtxBu+ON4TXv1SrjH5KVYka9sx2MauHrQU=",
		"https://example.isv.com?activity=queryInstance&instanceId=ebc28eb6-4606-4098-b4bd-c201c99a0654%2Cfe28e27e-1157-4105-8592-24cc9488db10%2C92df74e4-163e-4e0b-a206-d9800d33881b&testFlag=1&timeStamp=20230327065233980&authToken=Eh%2F3Ud%2BR1j3d%2FwOui5CAcvRipM8IuribvgkXfJAsTfE%3D",
		"https://example.isv.com?activity=instanceStatus&instanceId=huaweitest123456&instanceStatus=FREEZE&testFlag=1&timeStamp=20230327070251713&authToken=pqlrW7%2BPHC%2F1JE%2BMEjKxC94GGJreoS6PZHd982auw2o%3D",
		"https://example.isv.com?activity=upgrade&amount=6456&instanceId=huaweitest123456&orderId=CS1906666688ABCDE&productId=00301-666688-0-0&saasExtendParams=W3sibmFtZSI6ImlkTnVtIiwidmFsdWUiOiIzNTIyNTU1NTU1NTU2NTYifSx7Im5hbWUiOiJ1c2VyTmFtZSIsInZhbHVlIjoiaHVhd2VpMTIzIn0seyJuYW1lIjoiY3VzdEVtYWlsIiwidmFsdWUiOiIxMjNAaHVhd2VpLmNvbSJ9XQ==&skuCode=d0abcd12-...",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		_, err = koogallery.VerifyAuthTokenQuery(key(), u.RawQuery)
		if strings.Contains(raw, "timeStamp=") && strings.Contains(raw, "authToken=") {
			wantCode(t, err, koogallery.CodeAuthFailed)
		} else {
			wantCode(t, err, koogallery.CodeInvalidParam) // the cut-off upgrade URL has no timeStamp
		}
	}
	// The queryInstance example splits into three instance IDs.
	u, _ := url.Parse("https://example.isv.com?activity=queryInstance&instanceId=ebc28eb6-4606-4098-b4bd-c201c99a0654%2Cfe28e27e-1157-4105-8592-24cc9488db10%2C92df74e4-163e-4e0b-a206-d9800d33881b&testFlag=1")
	if ids := strings.Split(u.Query().Get("instanceId"), ","); len(ids) != 3 {
		t.Fatalf("instance IDs: %v", ids)
	}
}

// auth.md §3.3: the POST-body variant.
func TestAuthTokenBody(t *testing.T) {
	body := map[string]string{"p1": "1", "p2": "2", "p3": "3", "blank": " ", "empty": "", "timeStamp": "201706211855321"}
	want := koogallery.AuthToken(key(), "201706211855321", url.Values{"p1": {"1"}, "p2": {"2"}, "p3": {"3"}, "timeStamp": {"201706211855321"}})
	if got := koogallery.AuthTokenBody(key(), body); got != want {
		t.Fatalf("AuthTokenBody = %s, want %s (blank members must be skipped)", got, want)
	}
	for _, h := range []string{want, `"` + want + `"`, ` "` + want + `" `} {
		if err := koogallery.VerifyAuthTokenBody(key(), body, h); err != nil {
			t.Fatalf("header %q: %v", h, err)
		}
	}
	wantCode(t, koogallery.VerifyAuthTokenBody(key(), body, `""`+want+`""`), koogallery.CodeAuthFailed)
	wantCode(t, koogallery.VerifyAuthTokenBody(key(), body, ""), koogallery.CodeAuthFailed)
	changed := map[string]string{"p1": "1", "p2": "X", "p3": "3", "timeStamp": "201706211855321"}
	wantCode(t, koogallery.VerifyAuthTokenBody(key(), changed, want), koogallery.CodeAuthFailed)
	noTS := map[string]string{"p1": "1"}
	wantField(t, koogallery.VerifyAuthTokenBody(key(), noTS, want), "timeStamp")
}

// The sorted string is deterministic even for names that are not UTF-8
// (found by FuzzAuthTokenQuery: two such names compared as equal).
func TestAuthTokenSortedStringDeterministic(t *testing.T) {
	q := url.Values{"\xa0": {""}, "\x99": {""}, "\xff\xfe": {"1"}, "timeStamp": {"7"}, "\uFFFD": {"r"}}
	want := koogallery.AuthTokenSortedString(q)
	for range 200 {
		if got := koogallery.AuthTokenSortedString(q); got != want {
			t.Fatalf("sorted string changed: %q vs %q", got, want)
		}
	}
	if want != "timeStamp=7&\x99=&\xa0=&\uFFFD=r&\xff\xfe=1" {
		t.Fatalf("sorted string %q", want)
	}
}
