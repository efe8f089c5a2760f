//go:build linux && race

package web

// peakRSSBound is the peak RSS TestCompressedResponsesKeepMemoryBounded
// allows the server process under the race detector, whose shadow memory
// multiplies what a process touches: the same runs measured 123 MB and
// 184 MB with it, 37 MB and 45 MB without.
const peakRSSBound = 400 << 20
