package kg

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// CallReport is what `kg call --json` prints.
type CallReport struct {
	Family     string      `json:"family"`
	Request    RequestView `json:"request"`
	Answer     *Answer     `json:"answer,omitempty"`
	DurationMs float64     `json:"durationMs"`
	Error      string      `json:"error,omitempty"`
}

// RequestView is the request as sent.
type RequestView struct {
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body,omitempty"`
}

func runCall(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) error {
	fs := flag.NewFlagSet("kg call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var tf targetFlags
	tf.register(fs)
	activity := fs.String("activity", "", "the activity: SaaS V2 newInstance (default), queryInstance, refreshInstance, updateInstanceStatus, releaseInstance, upgradeInstance, changeInstanceCheck, orderNotify; SaaS V1 newInstance (default), queryInstance, refreshInstance, expireInstance, releaseInstance, upgrade, instanceStatus; License A getLicense (default), refreshLicense, expireLicense, releaseLicense; License B refreshLicenseCode, updateLicenseCodeStatus (default), releaseLicenseCode; License C newInstance (default), getLicenseAsync, refreshInstance, updateInstanceStatus, releaseInstance, queryInstance, upgradeInstance")
	rawBody := fs.String("body", "", "send exactly this JSON body (SaaS V1: its members are the parameters)")
	debug := fs.Bool("test", false, `mark the call as a debug call (testFlag "1")`)
	method := fs.String("method", "", "SaaS V1 and License A only: GET (default) or POST (the POST-body variant with the authToken header)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of the readable report")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer (KooGallery waits 5s)")
	fields := fieldList{}
	fs.Var(fields, "field", "set a body field (SaaS V1: a parameter), name=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("kg call: unexpected argument %q", fs.Arg(0))
	}
	if err := envFlags(fs, lookup); err != nil {
		return err
	}
	t, err := tf.resolve()
	if err != nil {
		return err
	}
	if *timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %s", *timeout)
	}
	switch m := strings.ToUpper(*method); {
	case m == "":
	case t.family.Name() != FamilySaaSV1 && t.family.Name() != FamilyLicenseA:
		return fmt.Errorf("--method is for --family %s and %s only (the V2-signed families are always POST)", FamilySaaSV1, FamilyLicenseA)
	case m == http.MethodGet || m == http.MethodPost:
		t.family.(*v1Family).method = m
	default:
		return fmt.Errorf("--method %q: want GET or POST", *method)
	}

	if *activity == "" {
		*activity = defaultActivity(t.family.Name())
	}
	now := time.Now()
	var msg Message
	if *rawBody != "" {
		if len(fields) > 0 || *debug {
			return errors.New("--body sends the body as given: do not combine it with --field or --test")
		}
		msg, err = t.family.Raw([]byte(*rawBody))
	} else {
		msg, err = t.family.Build(*activity, fields, *debug, now)
	}
	if err != nil {
		return err
	}
	p, err := t.family.Sign(t.url, msg, now)
	if err != nil {
		return err
	}
	rep := CallReport{Family: t.family.Name(), Request: RequestView{Method: p.Method, URL: p.URL, Headers: map[string]string{}, Body: string(p.Body)}}
	for k := range p.Header {
		rep.Request.Headers[k] = p.Header.Get(k)
	}

	client := &http.Client{Transport: httpTransport(1, tf.insecure), Timeout: *timeout}
	defer client.CloseIdleConnections()
	req, err := p.Request(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	resp, err := client.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		_ = resp.Body.Close()
	}
	rep.DurationMs = float64(time.Since(start).Microseconds()) / 1000
	if err != nil {
		err = fmt.Errorf("kg call: %s %s: %w", p.Method, redactQuery(p.URL), err)
		rep.Error = err.Error()
		if werr := writeCall(stdout, rep, *asJSON); werr != nil {
			return werr
		}
		return err
	}
	a := checkAnswer(t, resp.StatusCode, resp.Header, body)
	rep.Answer = &a
	if perr := a.problem(); perr != nil {
		rep.Error = perr.Error()
	}
	if err := writeCall(stdout, rep, *asJSON); err != nil {
		return err
	}
	return a.problem()
}

func redactQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

func writeCall(w io.Writer, rep CallReport, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("kg call: write report: %w", err)
		}
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "> %s %s\n", rep.Request.Method, rep.Request.URL)
	for _, k := range sortedKeys(rep.Request.Headers) {
		fmt.Fprintf(&b, "> %s: %s\n", k, rep.Request.Headers[k])
	}
	if rep.Request.Body != "" {
		fmt.Fprintf(&b, ">\n> %s\n", rep.Request.Body)
	}
	b.WriteString("\n")
	if a := rep.Answer; a != nil {
		fmt.Fprintf(&b, "< %d %s (%.1f ms)\n", a.Status, http.StatusText(a.Status), rep.DurationMs)
		for _, k := range sortedKeys(a.Headers) {
			fmt.Fprintf(&b, "< %s: %s\n", k, a.Headers[k])
		}
		fmt.Fprintf(&b, "<\n< %s\n\n", a.Body)
		if a.BodySign.Valid {
			b.WriteString("Body-Sign: valid (HMAC-SHA256 over the body with the key)\n")
		} else {
			fmt.Fprintf(&b, "Body-Sign: WRONG: %s\n", a.BodySign.Error)
		}
		if a.ResultCode != "" {
			fmt.Fprintf(&b, "resultCode: %s (%s)\n", a.ResultCode, a.ResultMsg)
		}
		for _, n := range a.Notes {
			fmt.Fprintf(&b, "note: %s\n", n)
		}
		for _, d := range a.Decrypted {
			if d.Error != "" {
				fmt.Fprintf(&b, "decrypt %s: FAILED: %s\n", d.Path, d.Error)
			} else {
				fmt.Fprintf(&b, "decrypted %s (encryptType %s): %q\n", d.Path, a.EncryptType, d.Plaintext)
			}
		}
		if a.Decoded != nil {
			var pretty bytes.Buffer
			enc := json.NewEncoder(&pretty)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			if err := enc.Encode(a.Decoded); err == nil {
				b.WriteString("decoded answer (decrypted fields marked \"(decrypted)\"):\n")
				b.Write(pretty.Bytes())
			}
		}
	}
	if rep.Error != "" {
		fmt.Fprintf(&b, "error: %s\n", rep.Error)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("kg call: write report: %w", err)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
