//go:build !unix

package data

import "time"

// cpuTime is not measured here: benchmarks report a zero cpu-ns/op.
func cpuTime() time.Duration { return 0 }
