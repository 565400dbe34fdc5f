package eventstore_test

import (
	"strconv"
	"strings"
)

func itoa(n uint64) string        { return strconv.FormatUint(n, 10) }
func contains(s, sub string) bool { return strings.Contains(s, sub) }
