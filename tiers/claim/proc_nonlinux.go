//go:build !linux

package claim

import "runtime"

// procIdentity is the OS name where there are no pid namespaces to tell apart:
// records then match on the host name.
func procIdentity() string { return runtime.GOOS }
