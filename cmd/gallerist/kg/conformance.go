package kg

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/gallerist/gallerist/domain/licensetoken"
	"github.com/gallerist/gallerist/ingress/config"
)

// ErrConformanceFailed is wrapped by the error of a `kg conformance` run in
// which some rule failed.
var ErrConformanceFailed = errors.New("conformance rules failed")

// notCovered says what the catalogue does not check (yet), in the report.
func notCovered(family string) []string {
	switch family {
	case FamilySaaSV1:
		return []string{
			"SaaS V1 encrypted mobilePhone/email and saasExtendParams (saas-v1.md §3): sent by kg call --field, not checked by a rule",
			"SaaS V1 duplicate storms, retry schedule and timeStamp window (saas-v1.md, auth.md §3.4): the window is off by default",
			"SaaS V1 lengths of amount, diskSize, bandWidth, mobilePhone, email: not settled by the spec (saas-v1.md §3 UNCERTAIN)",
		}
	case FamilyLicenseA:
		return []string{
			"LA-LICENSE-VERIFIES runs only with --license-public-key (the issuer's public key, what gallerist license keygen printed as LICENSE_PUBLIC_KEY)",
			"getLicense 000005 \"license generation in progress\": accepted and retried, but not provoked (depends on the vendor's generator)",
			"the getLicense parameters beyond skuCode (license.md §2.1 UNCERTAIN): only the SaaS V1 ones are sent",
			"the timeStamp window (auth.md §3.4): off by default on a license-a route",
		}
	case FamilyLicenseB:
		return []string{
			"a known authorization code: a code becomes known only when the vendor's software activates it through KooGallery's open API (Gallerist's query API, POST /v1/license-codes/{code}/activate), which the production interface cannot reach; not covered: refreshLicenseCode RENEWAL/UNSUBSCRIBE_RENEWAL_PERIOD of a known code and its de-duplication on orderId + orderLineId (license.md §3.2), FREEZE/UNFREEZE and their repeats (§3.3), release and its repeat and calls after release (§3.4), and the whole code lifecycle",
			"KooGallery's retry schedule for License B (60 times every 2 min, codes-and-rules.md §4): every rule call is answered at once",
			"signature forms (b), (c), (d) of auth.md §2.3: the emulator signs form (a)",
		}
	case FamilyLicenseC:
		return []string{
			"the delivered License: getLicenseAsync's License travels by Gallerist's upload to KooGallery's open API (outgoing.md §5), not in the answer; checked with kg serve (the open-API stand-in) in Gallerist's own tests, not by these rules",
			"getLicenseAsync refusals 000900 (quota), 000901 (range outside the order), 000902 (expireTime missing for a period product): they depend on Query Order (open API); 000903 only on a route with requireFingerprint",
			"creation refusals 000100–000107: depend on the vendor's provisioner",
			"signature forms (b), (c), (d) of auth.md §2.3: the emulator signs form (a)",
		}
	}
	return []string{
		"SaaS V1 (saas-v1.md): run kg conformance --family saas-v1 against a V1 route; License A/B/C likewise with --family license-a|license-b|license-c, or --family all --config FILE --base-url URL",
		"HTTP 413 over the body cap (codes-and-rules.md §1): the cap is configurable, so no fixed size is checked",
		"releaseInstance of an instance still provisioning (saas-v2.md §7): not reachable from outside",
		"creation refusals 000100–000107 and changeInstanceCheck refusals: depend on the vendor's provisioner and policy",
		"signature forms (b), (c), (d) of auth.md §2.3: the emulator signs form (a) with sorted string members, where (a)–(c) agree",
	}
}

// RuleResult is one rule's verdict.
type RuleResult struct {
	Rule
	Pass       bool    `json:"pass"`
	Evidence   string  `json:"evidence"`
	DurationMs float64 `json:"durationMs"`
	Steps      []Step  `json:"steps"`
}

// ConformanceReport is what `kg conformance --json FILE` writes.
type ConformanceReport struct {
	URL        string       `json:"url"`
	Family     string       `json:"family"`
	Speed      float64      `json:"speed"`
	Storm      int          `json:"storm"`
	Started    time.Time    `json:"started"`
	DurationMs float64      `json:"durationMs"`
	Passed     int          `json:"passed"`
	Failed     int          `json:"failed"`
	Rules      []RuleResult `json:"rules"`
	NotCovered []string     `json:"notCovered"`
}

// AllReport is what `kg conformance --family all --json FILE` writes: one
// report per route of --config.
type AllReport struct {
	BaseURL string              `json:"baseUrl"`
	Passed  int                 `json:"passed"`
	Failed  int                 `json:"failed"`
	Routes  []ConformanceReport `json:"routes"`
}

func runConformance(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	fs := flag.NewFlagSet("kg conformance", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tf targetFlags
	tf.register(fs)
	jsonPath := fs.String("json", "", "also write the report as JSON to this file (- for stdout, replacing the lines)")
	only := fs.String("only", "", "run only the rules whose id matches this regular expression, e.g. 'SIG|NONCE'")
	list := fs.Bool("list", false, "list the rules (id, spec reference, what is checked) and exit; --family all lists every family's")
	speed := fs.Float64("speed", 600, "compress KooGallery's waits (queryInstance polling and retries every 2 min, for 2 h) by this factor")
	storm := fs.Int("storm", 16, "concurrent identical calls of the duplicate-storm rule")
	steps := fs.Bool("steps", false, "print every call of every rule (failed rules always show theirs)")
	baseURL := fs.String("base-url", "", "with --family all: the server's base URL (scheme://host:port); each route of --config is checked at base URL + its path")
	pubText := fs.String("license-public-key", "", "License A: the issuer's public key (gallerist license keygen's LICENSE_PUBLIC_KEY); getLicense's license must verify with it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("kg conformance: unexpected argument %q", fs.Arg(0))
	}
	if *list {
		return listRules(stdout, tf.family, *only)
	}
	if err := envFlags(fs, lookup); err != nil {
		return err
	}
	if err := checkSpeedStorm(*speed, *storm); err != nil {
		return err
	}
	var pub ed25519.PublicKey
	if *pubText != "" {
		k, err := licensetoken.ParsePublicKey(*pubText)
		if err != nil {
			return fmt.Errorf("--license-public-key: %w", err)
		}
		pub = k
	}
	out := stdout
	if *jsonPath == "-" {
		out = io.Discard
	}
	if tf.family == FamilyAll {
		return conformanceAll(ctx, tf, *baseURL, *only, pub, *speed, *storm, *jsonPath, out, stdout, *steps)
	}
	if *baseURL != "" {
		return fmt.Errorf("--base-url goes with --family %s; give --url for one production address", FamilyAll)
	}
	t, err := tf.resolve()
	if err != nil {
		return err
	}
	rules, err := selectRules(t.family.Name(), *only)
	if err != nil {
		return err
	}
	rules, err = applicable(rules, pub, *only)
	if err != nil {
		return err
	}
	rep, err := conformance(ctx, t, tf.insecure, *speed, *storm, rules, out, *steps, pub)
	if err != nil {
		return err
	}
	if *jsonPath != "" {
		if err := writeReport(*jsonPath, stdout, rep); err != nil {
			return err
		}
	}
	if rep.Failed > 0 {
		return fmt.Errorf("kg conformance: %w: %d of %d (%s)", ErrConformanceFailed, rep.Failed, len(rep.Rules), strings.Join(failedIDs(rep), ", "))
	}
	return nil
}

func failedIDs(rep ConformanceReport) []string {
	var ids []string
	for _, r := range rep.Rules {
		if !r.Pass {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// listRules prints the catalogue of family (every family's for all).
func listRules(stdout io.Writer, family, only string) error {
	families := []string{family}
	if family == FamilyAll {
		families = familyNames
	}
	n := 0
	for _, f := range families {
		rules, err := selectRules(f, only)
		if err != nil && family == FamilyAll {
			continue // --only matches none of this family
		}
		if err != nil {
			return err
		}
		for _, r := range rules {
			fmt.Fprintf(stdout, "%-26s %-48s %s\n", r.ID, r.Ref, r.Title)
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("--only %q matches no rule id", only)
	}
	return nil
}

// applicable drops the rules that need what was not given: the License A
// public key. Asking for such a rule by --only without it is an error.
func applicable(rules []Rule, pub ed25519.PublicKey, only string) ([]Rule, error) {
	if pub != nil {
		return rules, nil
	}
	var out []Rule
	for _, r := range rules {
		if r.ID == "LA-LICENSE-VERIFIES" {
			if only != "" && len(rules) == 1 {
				return nil, fmt.Errorf("rule %s needs --license-public-key", r.ID)
			}
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// conformanceAll runs every route of --config at base URL + its path with
// the route's family.
func conformanceAll(ctx context.Context, tf targetFlags, base, only string, pub ed25519.PublicKey, speed float64, storm int, jsonPath string, out, stdout io.Writer, steps bool) error {
	switch {
	case tf.configPath == "":
		return fmt.Errorf("--family %s needs --config FILE (its routes are checked)", FamilyAll)
	case base == "":
		return fmt.Errorf("--family %s needs --base-url (scheme://host:port of the server)", FamilyAll)
	case tf.url != "" || tf.route != "" || tf.key != "":
		return fmt.Errorf("--family %s takes the routes, keys and families from --config and the address from --base-url: drop --url, --route and --key", FamilyAll)
	}
	f, err := config.Load(tf.configPath)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	all := AllReport{BaseURL: base}
	var failed []string
	for _, r := range f.Routes {
		rt := tf
		rt.url = strings.TrimSuffix(base, "/") + r.Path
		rt.route = r.Path
		rt.family = string(r.Family)
		t, err := rt.resolve()
		if err != nil {
			return fmt.Errorf("route %s: %w", r.Path, err)
		}
		rules, err := selectRules(t.family.Name(), only)
		if err != nil && only != "" {
			continue // --only selects none of this family's rules
		}
		if err != nil {
			return err
		}
		if rules, err = applicable(rules, pub, only); err != nil {
			return fmt.Errorf("route %s: %w", r.Path, err)
		}
		rep, err := conformance(ctx, t, rt.insecure, speed, storm, rules, out, steps, pub)
		if err != nil {
			return fmt.Errorf("route %s: %w", r.Path, err)
		}
		all.Routes = append(all.Routes, rep)
		all.Passed += rep.Passed
		all.Failed += rep.Failed
		for _, id := range failedIDs(rep) {
			failed = append(failed, r.Path+" "+id)
		}
	}
	if len(all.Routes) == 0 {
		return fmt.Errorf("--only %q matches no rule of any route of %s", only, tf.configPath)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "all routes: %d rules on %d routes: %d passed, %d failed\n", all.Passed+all.Failed, len(all.Routes), all.Passed, all.Failed)
	if err := write(out, &b); err != nil {
		return err
	}
	if jsonPath != "" {
		if err := writeReport(jsonPath, stdout, all); err != nil {
			return err
		}
	}
	if all.Failed > 0 {
		return fmt.Errorf("kg conformance: %w: %d of %d (%s)", ErrConformanceFailed, all.Failed, all.Passed+all.Failed, strings.Join(failed, ", "))
	}
	return nil
}

// familyRules returns one family's catalogue.
func familyRules(family string) ([]Rule, error) {
	switch family {
	case "", FamilySaaSV2:
		return v2Rules(), nil
	case FamilySaaSV1:
		return v1Rules(), nil
	case FamilyLicenseA:
		return licenseARules(), nil
	case FamilyLicenseB:
		return licenseBRules(), nil
	case FamilyLicenseC:
		return licenseCRules(), nil
	}
	return nil, fmt.Errorf("--family %q: want one of %s, or %s with --config", family, strings.Join(familyNames, ", "), FamilyAll)
}

// selectRules returns the family's catalogue, or the rules of it whose id
// matches the regular expression only.
func selectRules(family, only string) ([]Rule, error) {
	rules, err := familyRules(family)
	if err != nil {
		return nil, err
	}
	if only == "" {
		return rules, nil
	}
	re, err := regexp.Compile(only)
	if err != nil {
		return nil, fmt.Errorf("--only %q: %w", only, err)
	}
	var sel []Rule
	for _, r := range rules {
		if re.MatchString(r.ID) {
			sel = append(sel, r)
		}
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("--only %q matches no %s rule id (kg conformance --list shows them)", only, family)
	}
	return sel, nil
}

// conformance runs rules one after the other against t and prints one line
// per rule to out.
func conformance(ctx context.Context, t target, insecure bool, speed float64, storm int, rules []Rule, out io.Writer, allSteps bool, pub ed25519.PublicKey) (ConformanceReport, error) {
	d := newDriver(t, insecure, speed, storm)
	d.licensePub = pub
	defer d.close()
	rep := ConformanceReport{URL: t.url.Redacted(), Family: t.family.Name(), Speed: speed, Storm: storm, Started: time.Now().UTC(), NotCovered: notCovered(t.family.Name())}
	var b strings.Builder
	fmt.Fprintf(&b, "kg conformance: %d %s rules against %s (waits ×1/%g, storms of %d)\n", len(rules), rep.Family, rep.URL, speed, storm)
	if err := write(out, &b); err != nil {
		return rep, err
	}
	for _, r := range rules {
		s := d.session(nil)
		start := time.Now()
		evidence, err := r.check(ctx, s)
		res := RuleResult{Rule: r, Pass: err == nil, Evidence: evidence, DurationMs: float64(time.Since(start).Microseconds()) / 1000, Steps: s.steps}
		if ctx.Err() != nil {
			return rep, fmt.Errorf("kg conformance: interrupted at %s: %w", r.ID, ctx.Err())
		}
		verdict := "PASS"
		if err != nil {
			verdict = "FAIL"
			res.Evidence = strings.TrimPrefix(err.Error(), errViolation.Error()+": ")
			rep.Failed++
		} else {
			rep.Passed++
		}
		rep.Rules = append(rep.Rules, res)
		fmt.Fprintf(&b, "%s %s %s — %s\n", verdict, r.ID, r.Ref, res.Evidence)
		if err != nil || allSteps {
			for _, st := range res.Steps {
				b.WriteString("    " + formatStep(st))
			}
		}
		if err := write(out, &b); err != nil {
			return rep, err
		}
	}
	rep.DurationMs = float64(time.Since(rep.Started).Microseconds()) / 1000
	fmt.Fprintf(&b, "%d rules: %d passed, %d failed (%.1fs)\n", len(rep.Rules), rep.Passed, rep.Failed, rep.DurationMs/1000)
	for _, n := range rep.NotCovered {
		fmt.Fprintf(&b, "not covered: %s\n", n)
	}
	return rep, write(out, &b)
}

// write flushes b to w.
func write(w io.Writer, b *strings.Builder) error {
	_, err := io.WriteString(w, b.String())
	b.Reset()
	if err != nil {
		return fmt.Errorf("kg conformance: write: %w", err)
	}
	return nil
}

func writeReport(path string, stdout io.Writer, rep any) error {
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("kg conformance: encode report: %w", err)
	}
	raw = append(raw, '\n')
	if path == "-" {
		if _, err := stdout.Write(raw); err != nil {
			return fmt.Errorf("kg conformance: write report: %w", err)
		}
		return nil
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		return fmt.Errorf("kg conformance: --json: %w", err)
	}
	return nil
}
