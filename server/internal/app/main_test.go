package app_test

import (
	"os"
	"testing"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
