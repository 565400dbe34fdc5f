package kg

import (
	"strings"
	"time"
)

// This file holds the call templates of the License families (license.md):
// plausible values per activity; "" marks what must come from --field (an
// existing instance or authorization code).

// defaultActivity is what kg call sends without --activity.
func defaultActivity(family string) string {
	switch family {
	case FamilyLicenseA:
		return "getLicense"
	case FamilyLicenseB:
		return "updateLicenseCodeStatus"
	}
	return "newInstance"
}

// licenseADefaults: License A (license.md §2), sent V1-style (GET, authToken).
func licenseADefaults(order, business string, now time.Time) map[string]map[string]string {
	return map[string]map[string]string{
		"getLicense": {"customerId": strings.ReplaceAll(uuidText(), "-", ""), "customerName": "demo-buyer", "businessId": business,
			"orderId": order, "productId": "00301-000001-0--0", "skuCode": "sku-demo", "chargingMode": "1",
			"periodType": "year", "periodNumber": "1", "expireTime": now.UTC().AddDate(1, 0, 0).Format("20060102150405")},
		"refreshLicense": {"orderId": order, "instanceId": "", "expireTime": now.UTC().AddDate(2, 0, 0).Format("20060102150405")},
		"expireLicense":  {"instanceId": ""},
		"releaseLicense": {"orderId": "", "instanceId": ""},
	}
}

// licenseBDefaults: License B (license.md §3), V2-signed POST.
func licenseBDefaults(order string, now time.Time) map[string]map[string]string {
	return map[string]map[string]string{
		"refreshLicenseCode": {"scene": "RENEWAL", "orderId": order, "orderLineId": order + "-000001", "license": "",
			"expireTime": now.UTC().AddDate(1, 0, 0).Format("20060102150405")},
		"updateLicenseCodeStatus": {"license": "", "status": "FREEZE"},
		"releaseLicenseCode":      {"license": ""},
	}
}

// licenseCDefaults: License C (license.md §4), V2-signed POST.
func licenseCDefaults(order, business string, now time.Time) map[string]map[string]string {
	return map[string]map[string]string{
		"newInstance":          {"orderId": order, "orderLineId": order + "-000001", "businessId": business},
		"queryInstance":        {"instanceId": ""},
		"refreshInstance":      {"scene": "RENEWAL", "orderId": order, "orderLineId": order + "-000001", "instanceId": "", "expireTime": now.UTC().AddDate(1, 0, 0).Format("20060102150405") + "000"},
		"updateInstanceStatus": {"instanceId": "", "status": "FREEZE"},
		"releaseInstance":      {"instanceId": ""},
		"upgradeInstance":      {"instanceId": "", "orderId": order, "orderLineId": order + "-000001"},
		"getLicenseAsync": {"instanceId": "", "eventId": strings.ReplaceAll(uuidText(), "-", ""),
			"effectiveTime": licenseTime(now), "expireTime": licenseTime(now.AddDate(1, 0, 0))},
	}
}

// licenseTime is getLicenseAsync's documented time form (license.md §4.6):
// "yyyy-MM-dd HH:mm:ss z", UTC.
func licenseTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05") + " z" }
