package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// tenantSettings is the configuration a tenant admin (or support with the
// write scope) can change. The JSON form is what support.change audit
// events show as before and after.
type tenantSettings struct {
	CompanyName string `json:"company_name"`
	Theme       string `json:"theme"`
	WeeklyEmail bool   `json:"weekly_email"`
}

// themes are the values tenantSettings.Theme may take.
var themes = []string{"light", "dark", "ocean"}

// validate reports a setting the form must not store.
func (s tenantSettings) validate() error {
	name := strings.TrimSpace(s.CompanyName)
	switch {
	case name == "":
		return fmt.Errorf("company name is required")
	case utf8.RuneCountInString(name) > 100:
		return fmt.Errorf("company name is longer than 100 characters")
	case !utf8.ValidString(name) || strings.ContainsFunc(name, hiddenRune):
		return fmt.Errorf("company name is not valid text")
	case !slices.Contains(themes, s.Theme):
		return fmt.Errorf("unknown theme %q", s.Theme)
	}
	return nil
}

// hiddenRune reports whether r is a control character (C0, DEL, C1), a
// line or paragraph separator, a bidirectional control such as U+202E or
// another format character such as the zero-width space U+200B, which
// would make the name read differently in a page or the audit log than it
// is (or a change of it look like none).
func hiddenRune(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) || unicode.Is(unicode.Cf, r)
}

// settingsStore keeps each tenant's settings in memory (the demo keeps only
// the support-access data in the database).
type settingsStore struct {
	mu sync.Mutex
	m  map[string]tenantSettings
}

func newSettingsStore(d directory) *settingsStore {
	s := &settingsStore{m: make(map[string]tenantSettings)}
	for _, t := range d.tenants {
		s.m[t.ID] = tenantSettings{CompanyName: t.Name, Theme: "light", WeeklyEmail: true}
	}
	return s
}

func (s *settingsStore) get(tenantID string) tenantSettings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[tenantID]
}

// change replaces tenantID's settings with next after record (the audit of
// the change) succeeded; if record fails nothing changes.
func (s *settingsStore) change(tenantID string, next tenantSettings, record func(before, after tenantSettings) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	before := s.m[tenantID]
	if err := record(before, next); err != nil {
		return err
	}
	s.m[tenantID] = next
	return nil
}
