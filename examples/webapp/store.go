package main

import (
	"context"
	"fmt"
	"io"

	sa "github.com/supportaccess/supportaccess"
	"github.com/supportaccess/supportaccess/memstore"
)

// openStore opens the store the flags ask for. It returns the store, what
// to close on shutdown (nil for none) and a description for the log.
func openStore(ctx context.Context, o options) (sa.Store, io.Closer, string, error) {
	switch o.Dialect {
	case "memory":
		return memstore.New(), nil, "memory (nothing is kept)", nil
	}
	return nil, nil, "", fmt.Errorf("unknown -dialect %q (want sqlite, postgres, mysql or memory)", o.Dialect)
}
