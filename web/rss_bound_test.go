//go:build linux && !race

package web

// peakRSSBound is the peak RSS TestCompressedResponsesKeepMemoryBounded
// allows the server process (measured: 37 MB with compressed forms kept,
// 45 MB with the file compressed while sent).
const peakRSSBound = 200 << 20
