package eventstore

import "testing"

func TestSubjectsCover(t *testing.T) {
	cases := []struct {
		subjects []string
		prefix   string
		want     bool
	}{
		{[]string{"gallerist.>"}, "gallerist", true},
		{[]string{">"}, "gallerist", true},
		{[]string{"*.>"}, "gallerist", true},
		{[]string{"other.>", "gallerist.>"}, "gallerist", true},
		{[]string{"gallerist.*"}, "gallerist", false},
		{[]string{"gallerist.instance.>"}, "gallerist", false},
		{[]string{"gallerist"}, "gallerist", false},
		{[]string{"galleristx.>"}, "gallerist", false},
		{[]string{"acme.>"}, "acme.gallerist", true},
		{[]string{"acme.*.>"}, "acme.gallerist", true},
		{[]string{"acme.*"}, "acme.gallerist", false},
		{[]string{"acme.gallerist.>"}, "acme", false},
		{nil, "gallerist", false},
	}
	for _, c := range cases {
		if got := subjectsCover(c.subjects, c.prefix); got != c.want {
			t.Errorf("subjectsCover(%q, %q) = %v, want %v", c.subjects, c.prefix, got, c.want)
		}
	}
}
