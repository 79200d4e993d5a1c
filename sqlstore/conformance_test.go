package sqlstore_test

import (
	"testing"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/sqlstore/sqltest"
	"github.com/supportaccess/supportaccess/storetest"
)

func TestConformance(t *testing.T) {
	for _, d := range sqltest.Dialects() {
		t.Run(d.String(), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) sa.Store { return sqltest.NewStore(t, d) })
		})
	}
}
