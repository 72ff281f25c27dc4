package fleet

import "time"

// SetInventoryBackoff sets the pause between inventory attempts for a
// test and returns the old value.
func SetInventoryBackoff(d time.Duration) time.Duration {
	old := inventoryBackoff
	inventoryBackoff = d
	return old
}
