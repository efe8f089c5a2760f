//go:build unix

package tier

import "syscall"

// descriptorLimit returns the soft limit on open descriptors, 0 if unknown.
func descriptorLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return uint64(rl.Cur)
}
