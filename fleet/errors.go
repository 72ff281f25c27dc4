package fleet

import "errors"

// ErrInvalidHosts is returned when a host list cannot be read or is not
// valid: an unknown key, a missing field, a duplicate name, a bad URL.
var ErrInvalidHosts = errors.New("invalid host list")

// ErrInventory is returned when an inventory URL cannot be fetched.
var ErrInventory = errors.New("inventory unavailable")

// ErrInvalidOptions is returned when deployment options do not fit the host
// list: an unknown canary host or datacenter, a negative bucket or budget.
var ErrInvalidOptions = errors.New("invalid fleet options")

// ErrUnknownFleet is returned by Status when no host that answered has a
// deployment labelled with the fleet id.
var ErrUnknownFleet = errors.New("unknown fleet deployment")
