package server

import (
	"context"
	"strings"
	"time"
	"unicode"

	"github.com/gallerist/gallerist/domain/instance"
	"github.com/gallerist/gallerist/ingress/config"
	"github.com/gallerist/gallerist/ingress/koogallery"
)

// licenseCActivities is the License C activity set (license.md §4,
// codes-and-rules.md §9): the four instance activities as for SaaS V2,
// getLicenseAsync, and queryInstance and upgradeInstance with the SaaS V2
// definitions (license.md §4.7). changeInstanceCheck and orderNotify are
// not License C activities (000002).
var licenseCActivities = map[string]activityHandler{
	"newInstance":          (*Server).newInstanceC,
	"refreshInstance":      (*Server).refreshInstance,
	"updateInstanceStatus": (*Server).updateInstanceStatus,
	"releaseInstance":      (*Server).releaseInstance,
	"getLicenseAsync":      (*Server).getLicenseAsync,
	"queryInstance":        (*Server).queryInstanceC,
	"upgradeInstance":      (*Server).upgradeInstance,
}

// maxFingerprintLen is the longest deviceFingerprint accepted, in
// characters: the table says 1024, the client guide allows up to 5 KB
// (license.md §4.6, §4.8).
const maxFingerprintLen = 5 * 1024

// licenseCNewInstanceResponse is newInstance's answer on a License C route
// (license.md §4.2): resultCode, resultMsg and instanceId, no encryptType.
type licenseCNewInstanceResponse struct {
	ResultCode string `json:"resultCode"`
	ResultMsg  string `json:"resultMsg"`
	InstanceID string `json:"instanceId,omitempty"`
}

func (r licenseCNewInstanceResponse) code() string { return r.ResultCode }

// newInstanceC: license.md §4.2, the SaaS V2 rules (idempotent on the order
// line, instanceId = the first businessId, 000004 past the provisioning
// budget, debug answers the businessId and stores nothing).
func (s *Server) newInstanceC(ctx context.Context, cl *call, b body) any {
	resp := s.newInstance(ctx, cl, b)
	if r, isNew := resp.(newInstanceResponse); isNew {
		return licenseCNewInstanceResponse{ResultCode: r.ResultCode, ResultMsg: r.ResultMsg, InstanceID: r.InstanceID}
	}
	return resp
}

// queryInstanceC: queryInstance with the SaaS V2 definition (license.md
// §4.7). A License instance has no app info: instances are answered
// without appInfo unless the vendor configured app info for the route (a
// frontEndUrl template, or a provisioning webhook).
func (s *Server) queryInstanceC(ctx context.Context, cl *call, b body) any {
	resp := s.queryInstance(ctx, cl, b)
	q, isQuery := resp.(queryResponse)
	if !isQuery || routeHasAppInfo(cl.ep.route) {
		return resp
	}
	info := make([]instanceInfo, len(q.Info))
	for i, ii := range q.Info {
		info[i] = instanceInfo{InstanceID: ii.InstanceID}
	}
	if q.Info != nil {
		q.Info = info
	}
	return q
}

// routeHasAppInfo reports whether the vendor configured app info for a
// License C route's instances.
func routeHasAppInfo(r config.Route) bool {
	return r.Provisioner.FrontEndURL != "" || (r.Webhook != nil && r.Webhook.Provisioning)
}

// getLicenseAsync: license.md §4.6. The application is recorded on the
// instance (InstanceLicenseRequested, idempotent on eventId: a repeat with
// the same deviceFingerprint records nothing); the license-delivery effect
// generates the License and uploads it to KooGallery with event_id =
// eventId. The answer is 000004 (asynchronous) until the upload is
// recorded, then 000000. A debug call is validated and answered 000000;
// nothing is recorded, generated or uploaded.
func (s *Server) getLicenseAsync(ctx context.Context, cl *call, b body) any {
	f, err := b.fields(m("instanceId", 64), m("effectiveTime", 32), o("expireTime", 32), m("eventId", 64),
		o("deviceFingerprint", maxFingerprintLen))
	if err != nil {
		return errorResult(err)
	}
	if err := checkEventID(f["eventId"]); err != nil {
		return errorResult(err)
	}
	effective, err := parseLicenseTime(f["effectiveTime"])
	if err != nil {
		return errorResult(koogallery.Invalid("effectiveTime", "effectiveTime %s", licenseTimeRule))
	}
	var expire time.Time
	if f["expireTime"] != "" {
		if expire, err = parseLicenseTime(f["expireTime"]); err != nil {
			return errorResult(koogallery.Invalid("expireTime", "expireTime %s", licenseTimeRule))
		}
		if !expire.After(effective) {
			return errorResult(koogallery.Invalid("expireTime", "expireTime must be after effectiveTime"))
		}
	}
	if strings.IndexFunc(f["deviceFingerprint"], unicode.IsControl) >= 0 {
		return errorResult(koogallery.Invalid("deviceFingerprint", "deviceFingerprint must not contain control characters"))
	}
	if cl.debug {
		return ok()
	}
	if cl.ep.route.RequireFingerprint && f["deviceFingerprint"] == "" {
		return result{ResultCode: string(koogallery.CodeLicenseDeviceRequired), ResultMsg: koogallery.CodeLicenseDeviceRequired.DefaultMessage()}
	}
	st, err := s.deps.Instances.Execute(ctx, f["instanceId"], instance.RequestLicense{
		EventID: f["eventId"], Fingerprint: f["deviceFingerprint"], EffectiveTime: effective, ExpireTime: expire,
	}, s.cause(cl, "", "", ""))
	if err != nil {
		return errorResult(err)
	}
	if a, found := st.LicenseApplication(f["eventId"]); found && a.DeliveredOnce {
		// Delivered, or delivered before and being uploaded again for this
		// re-send (license.md §4.6, point 5): KooGallery has the License.
		return ok()
	}
	return result{ResultCode: string(koogallery.CodeProcessing), ResultMsg: koogallery.CodeProcessing.DefaultMessage()}
}

// checkEventID: the eventId becomes one path segment of the upload
// (outgoing.md §5), so it holds no "/", no control characters and is not
// "." or "..".
func checkEventID(id string) error {
	if strings.Contains(id, "/") || id == "." || id == ".." || strings.IndexFunc(id, unicode.IsControl) >= 0 {
		return koogallery.Invalid("eventId", "eventId must not contain \"/\" or control characters")
	}
	return nil
}

const licenseTimeRule = "must be yyyy-MM-dd HH:mm:ss (optionally followed by z, Z, UTC or GMT) or 14 or 17 digits, in UTC"

// licenseTimeLayout is getLicenseAsync's documented time form without its
// zone token (codes-and-rules.md §8).
const licenseTimeLayout = "2006-01-02 15:04:05"

// parseLicenseTime parses a getLicenseAsync effectiveTime or expireTime
// leniently (license.md §4.6): "yyyy-MM-dd HH:mm:ss" with an optional
// trailing zone token (z, Z, UTC or GMT, with or without a space before
// it) and optional fractional seconds, or 14 or 17 digits
// (yyyyMMddHHmmss[SSS]); always UTC.
func parseLicenseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if len(s) == 14 || len(s) == 17 {
		if t, err := koogallery.ParseExpireTime(s); err == nil {
			return t, nil
		}
	}
	for _, zone := range []string{"UTC", "GMT", "z", "Z"} {
		if rest, cut := strings.CutSuffix(s, zone); cut {
			s = strings.TrimSpace(rest)
			break
		}
	}
	return time.ParseInLocation(licenseTimeLayout, s, time.UTC)
}
