package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/koogallery"
)

// fieldList collects repeated --field name=value flags.
type fieldList map[string]string

func (f fieldList) String() string { return fmt.Sprint(map[string]string(f)) }

func (f fieldList) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("--field wants name=value, got %q", v)
	}
	f[name] = value
	return nil
}

// sign prints a ready-to-run curl command carrying a correctly signed SaaS
// V2 request, so a person can try a server by hand.
func sign(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("url", "", "production address to call, e.g. http://127.0.0.1:8080/koogallery/demo (required)")
	key := fs.String("key", "", "access key (or take it from --config)")
	keyB64 := fs.Bool("key-base64", false, "the key is shown base64-encoded (international/EU consoles)")
	configPath := fs.String("config", "", "routes file to take the key from (the route whose path matches --url)")
	activity := fs.String("activity", "newInstance", "newInstance, queryInstance, refreshInstance, updateInstanceStatus, releaseInstance, upgradeInstance, changeInstanceCheck or orderNotify")
	rawBody := fs.String("body", "", "send this JSON body instead of building one")
	debug := fs.Bool("test", false, `mark the call as a debug call (testFlag "1")`)
	fields := fieldList{}
	fs.Var(fields, "field", "set a body field, name=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := envFlags(fs, os.LookupEnv); err != nil {
		return err
	}
	if *target == "" {
		return errors.New("--url is required")
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return fmt.Errorf("--url %q is not an absolute URL", *target)
	}
	k, err := signingKey(*key, *keyB64, *configPath, u.Path)
	if err != nil {
		return err
	}
	body := []byte(*rawBody)
	if len(body) == 0 {
		if body, err = buildBody(*activity, fields, *debug, time.Now()); err != nil {
			return err
		}
	}
	q := koogallery.SignV2Request(k, body, time.Now(), koogallery.NewNonce())
	u.RawQuery = q.Encode()
	fmt.Fprintf(stdout, "curl -sS -i -X POST %s -H %s --data-raw %s\n",
		shellQuote(u.String()), shellQuote("Content-Type: application/json;charset=utf8"), shellQuote(string(body)))
	return nil
}

func signingKey(key string, b64 bool, configPath, path string) ([]byte, error) {
	if key != "" {
		return config.Key{Value: key, Base64: b64}.Bytes()
	}
	if configPath == "" {
		return nil, errors.New("give --key or --config")
	}
	f, err := config.Load(configPath)
	if err != nil {
		return nil, err
	}
	for _, r := range f.Routes {
		if r.Path == path {
			return r.Keys[0].Bytes()
		}
	}
	return nil, fmt.Errorf("no route with path %s in %s", path, configPath)
}

// buildBody fills plausible values for an activity; --field overrides them
// and must supply what cannot be guessed (instanceId).
func buildBody(activity string, fields fieldList, debug bool, now time.Time) ([]byte, error) {
	order := "CS" + strings.ToUpper(randomText(13))
	defaults := map[string]map[string]string{
		"newInstance":          {"orderId": order, "orderLineId": order + "-000001", "businessId": uuidText()},
		"queryInstance":        {"instanceId": ""},
		"refreshInstance":      {"scene": "RENEWAL", "orderId": order, "orderLineId": order + "-000001", "instanceId": "", "expireTime": now.UTC().AddDate(1, 0, 0).Format("20060102150405") + "000"},
		"updateInstanceStatus": {"instanceId": "", "status": "FREEZE"},
		"releaseInstance":      {"instanceId": ""},
		"upgradeInstance":      {"instanceId": "", "orderId": order, "orderLineId": order + "-000001"},
		"changeInstanceCheck":  {"instanceId": ""},
		"orderNotify":          {"orderId": order, "orderLineId": order + "-000001"},
	}
	def, ok := defaults[activity]
	if !ok {
		names := make([]string, 0, len(defaults))
		for n := range defaults {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("unknown activity %q (one of %s)", activity, strings.Join(names, ", "))
	}
	b := map[string]any{"activity": activity}
	for k, v := range def {
		b[k] = v
	}
	for k, v := range fields {
		b[k] = v
	}
	for k, v := range b {
		if v == "" {
			return nil, fmt.Errorf("%s needs --field %s=…", activity, k)
		}
	}
	if activity == "changeInstanceCheck" {
		b["productInfo"] = map[string]string{"productId": "OFFI000000000001", "skuCode": "sku-demo", "productName": "demo"}
	}
	if debug {
		b["testFlag"] = "1"
	}
	return json.Marshal(b) // map keys are written sorted: form (a) = (b) = (c)
}

func randomText(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

func uuidText() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// shellQuote quotes s for a POSIX shell, leaving words that need no
// quoting as they are.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@%+=,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
