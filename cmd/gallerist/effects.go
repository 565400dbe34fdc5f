package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/gallerist/gallerist/projections/api"
)

// defaultAPIURL is where `gallerist effects` finds the query API when
// neither --api-url nor GALLERIST_API_URL says (serve --api-addr has no
// default; this is the address the documentation suggests).
const defaultAPIURL = "http://127.0.0.1:8081"

// Bounds of one call to the query API. A re-drive runs the effect's
// handler with its retries; the API bounds it at 5 minutes.
const (
	parkedTimeout  = time.Minute
	redriveTimeout = 6 * time.Minute
	maxAnswerBytes = 64 << 20
)

// reasonWidth bounds the reason column of the parked table (--json has the
// whole text).
const reasonWidth = 120

// effectsCmd is `gallerist effects parked|redrive`: operators' access to
// parked side effects through the query API of a running gallerist serve.
func effectsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprint(w, `usage: gallerist effects <subcommand> [flags]

  parked   list parked side effects (the events an effect gave up on)
  redrive  run the parked events of an effect again, for one instance or all

Both talk to the query API of a running gallerist serve (--api-addr):
--api-url (GALLERIST_API_URL, default `+defaultAPIURL+`) and
--api-token (GALLERIST_API_TOKEN). Run "gallerist effects <subcommand> -h"
for its flags.
`)
	}
	if len(args) == 0 {
		usage(stderr)
		return errors.New("give a subcommand: parked or redrive")
	}
	switch args[0] {
	case "parked":
		return effectsParked(ctx, args[1:], stdout, stderr)
	case "redrive":
		return effectsRedrive(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return flag.ErrHelp
	}
	usage(stderr)
	return fmt.Errorf("unknown subcommand %q: use parked or redrive", args[0])
}

// apiFlags are the flags of every effects subcommand that reach the API.
type apiFlags struct {
	url, token string
}

func (f *apiFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "api-url", defaultAPIURL, "base URL of the query API (gallerist serve --api-addr)")
	fs.StringVar(&f.token, "api-token", "", "bearer token of the query API (better: GALLERIST_API_TOKEN); of a comma-separated list the first is used")
}

// client checks the flags and returns the API client they describe.
func (f *apiFlags) client() (*apiClient, error) {
	raw := strings.TrimSpace(f.url)
	if raw == "" {
		return nil, errors.New("--api-url is empty")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--api-url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--api-url %q: want http(s)://host:port[/path]", f.url)
	}
	token := ""
	for t := range strings.SplitSeq(f.token, ",") {
		if t = strings.TrimSpace(t); t != "" {
			token = t
			break
		}
	}
	if token == "" {
		return nil, errors.New("the query API needs a bearer token: set GALLERIST_API_TOKEN (or --api-token) to one of serve's --api-token values")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return &apiClient{base: u, token: token, http: &http.Client{}}, nil
}

// apiClient calls the query API.
type apiClient struct {
	base  *url.URL
	token string
	http  *http.Client
}

// apiError is an error answer of the API.
type apiError struct {
	Status int
	Body   api.ErrorBody
	// Raw is the start of an answer that is not an API error body.
	Raw string
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the query API answered %d %s", e.Status, http.StatusText(e.Status))
	switch {
	case e.Body.Error != "":
		b.WriteString(": " + e.Body.Error)
		if e.Body.Field != "" {
			fmt.Fprintf(&b, " (%s)", e.Body.Field)
		}
	case e.Raw != "":
		b.WriteString(": " + e.Raw)
	}
	if e.Status == http.StatusUnauthorized {
		b.WriteString("; check GALLERIST_API_TOKEN (or --api-token) against serve's --api-token")
	}
	return b.String()
}

// call sends one request (body JSON-encoded unless nil) and decodes a 2xx
// answer into out.
func (c *apiClient) call(ctx context.Context, method, path string, query url.Values, body, out any, timeout time.Duration) error {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding the request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("request to the query API: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("query API at %s: %w (is gallerist serve running with --api-addr? set --api-url or GALLERIST_API_URL)", c.base.Redacted(), err)
		}
		return fmt.Errorf("query API at %s: %w", c.base.Redacted(), err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("reading the query API's answer (HTTP %d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(data, &e.Body) != nil || e.Body.Error == "" {
			e.Body = api.ErrorBody{}
			e.Raw = printable(strings.TrimSpace(string(data)), 200)
		}
		return e
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the query API's answer (HTTP %d) is not what %s %s returns: %w", resp.StatusCode, method, path, err)
	}
	return nil
}

// effectsParked lists parked side effects.
func effectsParked(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("effects parked", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var af apiFlags
	af.register(fs)
	effect := fs.String("effect", "", "only this effect's parked events (e.g. webhook, queryorder)")
	instance := fs.String("instance", "", "only this instance's parked events")
	limit := fs.Int("limit", 0, "at most this many, oldest first (the API's default 1000, at most 5000)")
	asJSON := fs.Bool("json", false, "print the API's answer as JSON instead of a table")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gallerist effects parked [--effect E] [--instance I] [--limit N] [--json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := envFlags(fs, connectionEnv); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *limit < 0 {
		return fmt.Errorf("--limit must be positive, got %d", *limit)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if *effect != "" {
		q.Set("effect", *effect)
	}
	if *instance != "" {
		q.Set("instanceId", *instance)
	}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	var list api.ParkedList
	if err := c.call(ctx, http.MethodGet, "/v1/effects/parked", q, nil, &list, parkedTimeout); err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	return printParked(stdout, list)
}

// printParked writes the parked list as a table, then one line saying how
// many and to which sequence the list is consistent.
func printParked(w io.Writer, list api.ParkedList) error {
	if len(list.Effects) == 0 {
		_, err := fmt.Fprintf(w, "no parked effects (effects view at sequence %d)\n", list.ConsistentTo)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EFFECT\tINSTANCE\tEVENT SEQ\tTYPE\tATTEMPTS\tPARKED AT\tREASON")
	for _, p := range list.Effects {
		parkedAt := "-"
		if !p.ParkedAt.IsZero() {
			parkedAt = p.ParkedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n",
			printable(p.Effect, 40), printable(p.InstanceID, 64), p.EventSeq, printable(p.EventType, 40),
			p.Attempts, parkedAt, printable(p.Reason, reasonWidth))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	more := ""
	if list.Truncated {
		more = "; more match: raise --limit or narrow with --effect/--instance"
	}
	_, err := fmt.Fprintf(w, "%d parked (effects view at sequence %d)%s\n", len(list.Effects), list.ConsistentTo, more)
	return err
}

// printable makes s safe for one table cell: control characters (tabs,
// newlines, escape sequences) become spaces, and it is cut to width runes.
func printable(s string, width int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == width {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			r = ' '
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// effectsRedrive re-drives the parked events of an effect, for one
// instance or for every instance.
func effectsRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("effects redrive", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var af apiFlags
	af.register(fs)
	effect := fs.String("effect", "", "the effect whose parked events to run again (required; e.g. webhook)")
	instance := fs.String("instance", "", "re-drive this instance's parked events")
	seq := fs.Uint64("seq", 0, "with --instance: re-drive only this parked event (its event seq; the instance's oldest parked one)")
	all := fs.Bool("all", false, "re-drive every instance with parked events of the effect")
	operator := fs.String("operator", defaultOperator(), "who asks (recorded in the log with the re-drive)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gallerist effects redrive --effect E (--instance I [--seq N] | --all) [--operator NAME]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := envFlags(fs, connectionEnv); err != nil {
		return err
	}
	switch {
	case fs.NArg() != 0:
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case *effect == "":
		return errors.New("--effect is required (e.g. --effect webhook)")
	case *seq != 0 && *instance == "":
		return errors.New("--seq needs --instance (the instance whose parked event to re-drive)")
	case *instance == "" && !*all:
		return errors.New("say which parked events: --instance <id> or --all")
	case *instance != "" && *all:
		return errors.New("--instance and --all exclude each other")
	case strings.TrimSpace(*operator) == "":
		return errors.New("--operator is empty (it is recorded with the re-drive)")
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	var res api.RedriveResult
	req := api.RedriveRequest{Effect: *effect, InstanceID: *instance, EventSeq: *seq, Operator: *operator}
	if err := c.call(ctx, http.MethodPost, "/v1/effects/redrive", nil, req, &res, redriveTimeout); err != nil {
		return err
	}
	what := fmt.Sprintf("instance %s", *instance)
	if *seq != 0 {
		what = fmt.Sprintf("instance %s (event %d only)", *instance, *seq)
	}
	if *all {
		what = fmt.Sprintf("%d instance(s)", res.Redriven)
	}
	_, err = fmt.Fprintf(stdout, "re-drove the parked %s events of %s (effects view at sequence %d when accepted); "+
		"events that failed again are parked again: see gallerist effects parked\n", *effect, what, res.ConsistentTo)
	return err
}

// connectionEnv looks up only the environment variables of the flags that
// say where and who (GALLERIST_API_URL, GALLERIST_API_TOKEN,
// GALLERIST_OPERATOR): which parked events to list or re-drive is said on
// the command line, never by a variable left in the environment.
func connectionEnv(name string) (string, bool) {
	switch name {
	case "GALLERIST_API_URL", "GALLERIST_API_TOKEN", "GALLERIST_OPERATOR":
		return os.LookupEnv(name)
	}
	return "", false
}

// defaultOperator names the operator for the audit trail: user@host.
func defaultOperator() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	switch {
	case name != "" && host != "":
		return name + "@" + host
	case name != "":
		return name
	}
	return host
}
