package openapi

import (
	"fmt"
	"strings"
)

// Site is the KooGallery site an account belongs to (outgoing.md §1).
type Site string

// The sites.
const (
	// SiteMainland is Huawei Cloud mainland China (mkt.myhuaweicloud.com).
	SiteMainland Site = "mainland"
	// SiteInternational is Huawei Cloud international (mkt-intl.myhuaweicloud.com).
	SiteInternational Site = "international"
	// SiteEU is Huawei Cloud Europe (mkt.myhuaweicloud.eu).
	SiteEU Site = "eu"
)

// Sites lists every site.
var Sites = []Site{SiteMainland, SiteInternational, SiteEU}

// ParseSite reads a site name, case-insensitively: "mainland" (also "cn"),
// "international" (also "intl") or "eu".
func ParseSite(s string) (Site, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "mainland", "cn":
		return SiteMainland, nil
	case "international", "intl":
		return SiteInternational, nil
	case "eu":
		return SiteEU, nil
	}
	return "", fmt.Errorf("openapi: unknown site %q (want mainland, international or eu)", s)
}

// Valid reports whether s is one of Sites.
func (s Site) Valid() bool {
	return s == SiteMainland || s == SiteInternational || s == SiteEU
}

// API names one open API, the key of its host list (outgoing.md §1 table).
type API string

// The open APIs of outgoing.md §1, each named for its documented hosts.
// Client methods: QueryOrder, UploadLicense, ActivateLicense, QueryLicense
// (heartbeat) and ReportSoftwareUsage.
const (
	APIQueryOrder       API = "queryOrder"       // GET  /api/mkp-openapi-public/global/v1/order/query
	APIUsagePush        API = "usagePush"        // POST /api/mkp-openapi-public/global/v1/isv/usage-data
	APIUsagePushOld     API = "usagePushOld"     // POST /rest/marketplace/v1/isv/usage-data
	APIUpload           API = "upload"           // POST /api/mkp-openapi-public/global/v1/market-event/{event_id}/file
	APILicenseActivate  API = "licenseActivate"  // POST /api/mkp-openapi-public/global/v1/license/activate
	APILicenseHeartbeat API = "licenseHeartbeat" // POST /api/mkp-openapi-public/global/v1/license/heartbeat
	APILicenseUsage     API = "licenseUsage"     // POST /api/mkp-openapi-public/global/v2/license/software-usage-info
)

// Documented hosts (outgoing.md §1).
const (
	HostMainland         = "https://mkt.myhuaweicloud.com"
	HostMainlandFallback = "https://mkt.myhuaweicloud.cn"
	HostInternational    = "https://mkt-intl.myhuaweicloud.com"
	HostEU               = "https://mkt.myhuaweicloud.eu"
)

// DefaultHosts returns the documented hosts of api on site, primary first
// (outgoing.md §1, "Gallerist" rules):
//   - mainland: mkt.myhuaweicloud.com, then mkt.myhuaweicloud.cn, for every API;
//   - international: mkt-intl.myhuaweicloud.com; the usage pushes (new and
//     old) keep the mkt.myhuaweicloud.cn fallback their page names;
//   - EU: mkt.myhuaweicloud.eu, no fallback.
//
// APIs not documented for a site use the site's primary host. An unknown
// site has no hosts.
func DefaultHosts(site Site, api API) []string {
	switch site {
	case SiteMainland:
		return []string{HostMainland, HostMainlandFallback}
	case SiteInternational:
		if api == APIUsagePush || api == APIUsagePushOld {
			return []string{HostInternational, HostMainlandFallback}
		}
		return []string{HostInternational}
	case SiteEU:
		return []string{HostEU}
	}
	return nil
}
