package store_test

import (
	"github.com/sre-tools/deployer/schedule"
	"github.com/sre-tools/deployer/store"
)

// The scheduler keeps its last fire times in the store directly.
var _ schedule.State = (*store.Store)(nil)
