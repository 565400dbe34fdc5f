// Package kg is the client side of the KooGallery emulator: it acts as
// KooGallery toward a production address. `kg call` sends one signed call
// and checks the answer as KooGallery would (Body-Sign, decryption of the
// app info); `kg load` drives a production address with a realistic signed
// SaaS V2 mix, open loop at a fixed rate or closed loop at maximum, and
// reports latency from an HDR histogram.
//
// The protocol algorithms are the kit's (ingress/koogallery); this package
// only builds the calls, sends them and reports.
package kg

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/koogallery"
)

// Usage is the help text of `gallerist kg`.
const Usage = `usage: gallerist kg <command> [flags]

Act as KooGallery toward a production address.

  call   send one signed call, check the answer's Body-Sign, decrypt the app info
  load   drive the address with a realistic signed SaaS V2 mix and report latency
  run    play one named scenario (lifecycles, retries, storms, dial test, negative
         cases) and print every call; "kg run --list" lists them
  conformance
         check every spec rule: one PASS/FAIL line per rule, exit non-zero on a
         failure, --json FILE for a report, --only REGEXP to select rules;
         --family saas-v2|saas-v1|license-a|license-b|license-c, or --family all
         --config FILE --base-url URL for every route of a routes file
  serve  run the stand-in for KooGallery's open APIs (Query Order with the mock
         orders, upload, License B codes), AK/SK-checked, on 127.0.0.1:8090;
         "kg serve -h" for its flags

The key comes from --key (--key-base64 if the console shows it base64-encoded)
or from a routes file: --config FILE [--route PATH] (default route: the path of
--url). Every flag can also be set as GALLERIST_<FLAG> (dashes as underscores).
Run "gallerist kg call -h" or "gallerist kg load -h" for the flags.
`

// Run executes `gallerist kg <command> …`. Output goes to stdout, usage and
// diagnostics to stderr. Cancelling ctx stops a load run, which then prints
// its partial summary.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return run(ctx, args, stdout, stderr, os.LookupEnv)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return errors.New("kg: give a command: call or load")
	}
	switch args[0] {
	case "call":
		return runCall(ctx, args[1:], stdout, stderr, lookup)
	case "load":
		return runLoad(ctx, args[1:], stdout, stderr, lookup)
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr, lookup)
	case "run":
		return runScenarioCmd(ctx, args[1:], stdout, stderr, lookup)
	case "conformance":
		return runConformance(ctx, args[1:], stdout, stderr, lookup)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, Usage)
		return nil
	}
	fmt.Fprint(stderr, Usage)
	return fmt.Errorf("kg: unknown command %q (call or load)", args[0])
}

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

// envFlags sets every flag not given on the command line from
// GALLERIST_<FLAG> (dashes as underscores), like the other subcommands.
func envFlags(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		name := "GALLERIST_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

// target is where and how to call: the production address, the family's
// signer and what decrypting the answer needs.
type target struct {
	url    *url.URL
	family Family
	key    []byte
	// encryptForced (--encrypt-type) wins over the answer's encryptType;
	// encryptRoute (the route's) is used when the answer has none.
	encryptForced, encryptRoute koogallery.EncryptType
}

// targetFlags are the flags shared by call and load.
type targetFlags struct {
	url, key, configPath, route, family, encryptType string
	keyB64, insecure                                 bool
}

func (t *targetFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.url, "url", "", "production address to call, e.g. http://127.0.0.1:8080/koogallery/demo (required)")
	fs.StringVar(&t.key, "key", "", "the access key (SaaS V2) or Key (SaaS V1); or take it from --config")
	fs.BoolVar(&t.keyB64, "key-base64", false, "the key is shown base64-encoded (international/EU consoles)")
	fs.StringVar(&t.configPath, "config", "", "routes file to take the key, family and encryptType from")
	fs.StringVar(&t.route, "route", "", "path of the route in --config (default: the path of --url)")
	fs.StringVar(&t.family, "family", "", `product family: saas-v2, saas-v1, license-a, license-b or license-c (default: the route's, else saas-v2); kg conformance also takes all (every route of --config, with --base-url)`)
	fs.StringVar(&t.encryptType, "encrypt-type", "", `encryptType to decrypt with: "1" AES-256 or "2" AES-128 (default: the answer's, else the route's, else "1")`)
	fs.BoolVar(&t.insecure, "insecure", false, "do not verify the server's TLS certificate (test endpoints only)")
}

// resolve turns the flags into a target. Errors name the flag.
func (t *targetFlags) resolve() (target, error) {
	if t.url == "" {
		return target{}, errors.New("--url is required")
	}
	u, err := url.Parse(t.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return target{}, fmt.Errorf("--url %q is not an absolute http(s) URL", t.url)
	}
	if u.RawQuery != "" {
		return target{}, fmt.Errorf("--url %q carries a query; give the production address only", t.url)
	}
	out := target{url: u}
	family := t.family
	switch {
	case t.key != "":
		if out.key, err = (config.Key{Value: t.key, Base64: t.keyB64}).Bytes(); err != nil {
			return target{}, fmt.Errorf("--key: %w", err)
		}
		if t.route != "" {
			return target{}, errors.New("--route needs --config")
		}
	case t.configPath != "":
		r, err := routeOf(t.configPath, t.route, u.Path)
		if err != nil {
			return target{}, err
		}
		if out.key, err = r.Keys[0].Bytes(); err != nil {
			return target{}, fmt.Errorf("--config %s: route %s: %w", t.configPath, r.Path, err)
		}
		out.encryptRoute = koogallery.EncryptType(r.EncryptType)
		if family == "" {
			family = string(r.Family)
		} else if r.Family != "" && family != string(r.Family) {
			return target{}, fmt.Errorf("--family %s but route %s in %s is %s", family, r.Path, t.configPath, r.Family)
		}
	default:
		return target{}, errors.New("give --key (or GALLERIST_KEY) or --config")
	}
	out.encryptForced = koogallery.EncryptType(t.encryptType)
	if out.encryptForced != "" && !out.encryptForced.Valid() {
		return target{}, fmt.Errorf(`--encrypt-type %q: want "1" (AES-256) or "2" (AES-128)`, t.encryptType)
	}
	if out.family, err = newFamily(family, out.key, out.encryptType()); err != nil {
		return target{}, err
	}
	return out, nil
}

// encryptType is the encryptType known before any answer: forced, else
// the route's ("" means the default, AES-256).
func (t target) encryptType() koogallery.EncryptType {
	if t.encryptForced != "" {
		return t.encryptForced
	}
	return t.encryptRoute
}

func routeOf(configPath, route, urlPath string) (config.Route, error) {
	f, err := config.Load(configPath)
	if err != nil {
		return config.Route{}, fmt.Errorf("--config: %w", err)
	}
	want := route
	if want == "" {
		want = urlPath
	}
	paths := make([]string, 0, len(f.Routes))
	for _, r := range f.Routes {
		if r.Path == want {
			return r, nil
		}
		paths = append(paths, r.Path)
	}
	sort.Strings(paths)
	flagName := "--url's path"
	if route != "" {
		flagName = "--route"
	}
	return config.Route{}, fmt.Errorf("%s %s is not a route of --config %s (routes: %s)", flagName, want, configPath, strings.Join(paths, ", "))
}

// httpTransport returns a keep-alive transport for up to conns parallel
// connections to one host.
func httpTransport(conns int, insecure bool) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns
	tr.MaxIdleConnsPerHost = conns
	tr.MaxConnsPerHost = conns
	tr.DisableCompression = true
	// HTTP/1.1 like KooGallery's client: one call per connection at a time,
	// so conns connections carry conns calls in flight.
	tr.ForceAttemptHTTP2 = false
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetHTTP1(true)
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // --insecure, test endpoints only
	}
	return tr
}
