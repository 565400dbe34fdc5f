package koogallery_test

import (
	"testing"
	"time"

	"github.com/gallerist/gallerist/ingress/koogallery"
)

func TestExpireTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"20180725000000", time.Date(2018, 7, 25, 0, 0, 0, 0, time.UTC)},
		{"20221124023618256", time.Date(2022, 11, 24, 2, 36, 18, 256e6, time.UTC)},
		{"20230523201932", time.Date(2023, 5, 23, 20, 19, 32, 0, time.UTC)},
		{"20241231235959999", time.Date(2024, 12, 31, 23, 59, 59, 999e6, time.UTC)},
	} {
		got, err := koogallery.ParseExpireTime(tc.in)
		if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("ParseExpireTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "2018072500000", "201807250000000", "2018072500000000", "201807250000000000", "20181325000000", "20180732000000", "20180725240000", "2018-07-25 00:00", "2018072500000a", "+0180725000000"} {
		if _, err := koogallery.ParseExpireTime(bad); err == nil {
			t.Errorf("ParseExpireTime(%q) accepted", bad)
		}
	}
	cst := time.FixedZone("CST", 8*3600)
	if got := koogallery.FormatExpireTime(time.Date(2022, 11, 24, 10, 36, 18, 256e6, cst)); got != "20221124023618" {
		t.Fatalf("FormatExpireTime = %s", got)
	}
}

func TestV1TimeStamp(t *testing.T) {
	got, err := koogallery.ParseV1TimeStamp("20230327065233980")
	if err != nil || !got.Equal(time.Date(2023, 3, 27, 6, 52, 33, 980e6, time.UTC)) {
		t.Fatalf("ParseV1TimeStamp = %v, %v", got, err)
	}
	if s := koogallery.FormatV1TimeStamp(got.In(time.FixedZone("X", -3600))); s != "20230327065233980" {
		t.Fatalf("FormatV1TimeStamp = %s", s)
	}
	if s := koogallery.FormatV1TimeStamp(time.Date(2020, 7, 27, 7, 37, 11, 3e6, time.UTC)); s != "20200727073711003" {
		t.Fatalf("FormatV1TimeStamp = %s", s)
	}
	for _, bad := range []string{"", "201706211855321", "2023032706523398x", "20231327065233980"} {
		_, err := koogallery.ParseV1TimeStamp(bad)
		wantField(t, err, "timeStamp")
	}
	if got := koogallery.FormatV2Timestamp(time.UnixMilli(1680508066618)); got != "1680508066618" {
		t.Fatalf("FormatV2Timestamp = %s", got)
	}
}
