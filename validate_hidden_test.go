package supportaccess_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	sa "github.com/supportaccess/supportaccess"
)

// Invisible characters in identifiers, and characters that reorder how
// text is displayed anywhere: two tenant IDs or principals that look the
// same in an audit view must be the same, and a reason must read as it
// is.
var (
	hiddenInIDs = map[string]string{
		"zero-width space":           "\u200b",
		"zero-width joiner":          "\u200d",
		"right-to-left mark":         "\u200f",
		"word joiner":                "\u2060",
		"byte order mark":            "\ufeff",
		"soft hyphen":                "\u00ad",
		"tag letter A":               "\U000E0041",
		"variation selector 16":      "\ufe0f",
		"Hangul filler":              "\u3164",
		"right-to-left override":     "\u202e",
		"two spaces in a row":        "  ",         // an HTML view shows one
		"Khitan small script filler": "\U00016FE4", // a blank mark, not default-ignorable in Go's tables
		"musical null notehead":      "\U0001D159", // drawn as nothing
	}
	reordering = map[string]string{
		"left-to-right embedding": "\u202a",
		"right-to-left override":  "\u202e",
		"pop directional format":  "\u202c",
		"first strong isolate":    "\u2068",
		"pop directional isolate": "\u2069",
	}
)

func TestGrantRefusesHiddenCharactersInIdentifiers(t *testing.T) {
	for name, r := range hiddenInIDs {
		for field, in := range map[string]sa.GrantInput{
			"TenantID":  {TenantID: "ac" + r + "me"},
			"Grantees":  {TenantID: "acme", Grantees: []string{"eve" + r + "@vendor.example"}},
			"TicketRef": {TenantID: "acme", TicketRef: "T-" + r + "1"},
			"By.ID":     {TenantID: "acme", By: sa.Actor{Kind: sa.ActorCustomer, ID: "admin" + r + "@acme.example"}},
		} {
			t.Run(field+"/"+name, func(t *testing.T) {
				e := newEnv(t)
				e.grant(sa.GrantInput{TenantID: "acme"})
				before := e.snapshot()
				if in.By.IsZero() {
					in.By = customer
				}
				_, err := e.m.Grant(ctx, in)
				require.ErrorIs(t, err, sa.ErrInvalidInput)
				require.Contains(t, err.Error(), field[:3])
				require.Equal(t, before, e.snapshot(), "nothing stored")
			})
		}
	}
}

func TestCheckRefusesHiddenCharacters(t *testing.T) {
	e := newEnv(t)
	e.grant(sa.GrantInput{TenantID: "acme"})
	for name, r := range hiddenInIDs {
		_, err := e.m.Check(ctx, "acme"+r, support.ID, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "tenant with %s", name)
		_, err = e.m.Check(ctx, "acme", support.ID+r, sa.ScopeRead)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "principal with %s", name)
	}
	_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeRead)
	require.NoError(t, err, "the plain identifiers are allowed")
}

func TestFreeTextRefusesReorderingButKeepsJoiners(t *testing.T) {
	for name, r := range reordering {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			before := e.snapshot()
			_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Reason: "refund " + r + "01$ yaw"})
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.Contains(t, err.Error(), "Reason")
			by := customer
			by.Name = "Ada " + r + "Admin"
			_, err = e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: by})
			require.ErrorIs(t, err, sa.ErrInvalidInput)
			require.Contains(t, err.Error(), "Name")
			require.Equal(t, before, e.snapshot(), "nothing stored")
		})
	}
	// Joiners and marks are part of written language in names and
	// reasons: an emoji sequence, a Persian name with a zero-width
	// non-joiner, a left-to-right mark in mixed-direction text.
	e := newEnv(t)
	by := customer
	by.Name = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
	g, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: by, Reason: "family \U0001F468\u200d\U0001F469\u200d\U0001F467 account, \u05e9\u05dc\u05d5\u05dd\u200e 42"})
	require.NoError(t, err)
	require.Equal(t, by.Name, g.GrantedBy.Name)
}

func TestScopesOtherSpellingsOfReadWriteRefused(t *testing.T) {
	for _, s := range []sa.Scope{"Write", "WRITE", "Read", "rEaD"} {
		e := newEnv(t)
		before := e.snapshot()
		_, err := e.m.Grant(ctx, sa.GrantInput{TenantID: "acme", By: customer, Scopes: []sa.Scope{s}})
		require.ErrorIs(t, err, sa.ErrInvalidInput, "%q", s)
		require.Contains(t, err.Error(), "case-sensitive")
		require.Equal(t, before, e.snapshot(), "nothing stored")
		_, err = e.m.Check(ctx, "acme", support.ID, s)
		require.ErrorIs(t, err, sa.ErrInvalidInput, "Check(%q)", s)
	}
	e := newEnv(t)
	e.grant(sa.GrantInput{Scopes: []sa.Scope{sa.ScopeWrite, "messages:read"}})
	_, err := e.m.Check(ctx, "acme", support.ID, sa.ScopeWrite)
	require.NoError(t, err)
}
