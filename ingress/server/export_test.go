package server

// ParseLicenseTime exposes getLicenseAsync's time parser to the tests.
var ParseLicenseTime = parseLicenseTime

// MaxFingerprintLen is the longest deviceFingerprint accepted.
const MaxFingerprintLen = maxFingerprintLen
