package memstore_test

import (
	"testing"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
	"github.com/supportaccess/supportaccess/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) sa.Store { return tamperable{memstore.New()} })
}
