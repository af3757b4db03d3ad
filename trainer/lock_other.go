//go:build !unix

package trainer

import "os"

// flockExclusive: without flock(2) the heartbeat lock file is the lock.
func flockExclusive(*os.File) error { return errFlockUnsupported }

// processGone cannot tell here: only the heartbeat decides.
func processGone(int) bool { return false }
