package ui_test

import (
	"os"
	"testing"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
)

// The servers under test share one throwaway PostgreSQL, stopped and removed
// when the tests end.
func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
