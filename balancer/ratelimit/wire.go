package ratelimit

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// The wire format of what nodes exchange is compact and bounded: each
// message holds entries of a uvarint key length, the key, and a uvarint
// value, and no message exceeds the size the caller gives, so that a flood
// of keys makes more messages, never a larger one.

// errTruncated is a message cut short or holding a key out of bounds.
var errTruncated = errors.New("ratelimit: malformed message")

// maxEntry is the most one entry takes: a key of the largest size (a
// policy's name and a hash, or MaxKeyLen bytes) and two uvarints.
const maxEntry = maxWireKey + 2*binary.MaxVarintLen64

// EncodeDeltas encodes ds as messages of at most size bytes each, every
// one beginning with prefix (a message kind, for one).
func EncodeDeltas(prefix []byte, ds []Delta, size int) [][]byte {
	return encode(prefix, len(ds), size, func(i int) (string, uint64) { return ds[i].Key, uint64(ds[i].Count) })
}

// DecodeDeltas decodes one message of EncodeDeltas, without its prefix.
func DecodeDeltas(b []byte) ([]Delta, error) {
	var out []Delta
	err := decode(b, func(k string, v uint64) {
		out = append(out, Delta{Key: k, Count: uint32(min(v, math.MaxUint32))})
	})
	return out, err
}

// EncodeBlocks encodes block changes as messages of at most size bytes
// each: the value is the block's time left in milliseconds plus 2, 1 for a
// block without end, 0 for one lifted; time left, not a time, so that
// peers' clocks need not agree.
func EncodeBlocks(prefix []byte, cs []BlockChange, now time.Time, size int) [][]byte {
	return encode(prefix, len(cs), size, func(i int) (string, uint64) {
		c := cs[i]
		switch {
		case c.Lifted:
			return c.Key, 0
		case c.Forever:
			return c.Key, 1
		}
		left := max(0, c.Until.Sub(now).Milliseconds())
		return c.Key, uint64(left) + 2
	})
}

// DecodeBlocks decodes one message of EncodeBlocks, without its prefix,
// with the ends of blocks as times of this node's clock.
func DecodeBlocks(b []byte, now time.Time) ([]BlockChange, error) {
	var out []BlockChange
	err := decode(b, func(k string, v uint64) {
		c := BlockChange{Key: k}
		switch v {
		case 0:
			c.Lifted = true
		case 1:
			c.Forever = true
		default:
			c.Until = now.Add(time.Duration(min(v-2, math.MaxInt64/uint64(time.Millisecond))) * time.Millisecond)
		}
		out = append(out, c)
	})
	return out, err
}

func encode(prefix []byte, n, size int, entry func(int) (string, uint64)) [][]byte {
	size = max(size, len(prefix)+maxEntry)
	var out [][]byte
	var msg []byte
	for i := range n {
		k, v := entry(i)
		if len(k) == 0 || len(k) > maxWireKey {
			continue
		}
		if msg != nil && len(msg)+len(k)+2*binary.MaxVarintLen64 > size {
			out = append(out, msg)
			msg = nil
		}
		if msg == nil {
			msg = append(make([]byte, 0, min(size, 64<<10)), prefix...)
		}
		msg = binary.AppendUvarint(msg, uint64(len(k)))
		msg = append(msg, k...)
		msg = binary.AppendUvarint(msg, v)
	}
	if msg != nil {
		out = append(out, msg)
	}
	return out
}

func decode(b []byte, entry func(string, uint64)) error {
	for len(b) > 0 {
		kl, n := binary.Uvarint(b)
		if n <= 0 || kl == 0 || kl > maxWireKey || uint64(len(b)-n) < kl {
			return errTruncated
		}
		b = b[n:]
		k := string(b[:kl])
		b = b[kl:]
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return errTruncated
		}
		b = b[n:]
		entry(k, v)
	}
	return nil
}

// EncodeLevels encodes levels as one message (for a push/pull of whole
// state, bounded by the number of levels the caller took), the value in
// thousandths of a token.
func EncodeLevels(ls []Level) []byte {
	msgs := encode(nil, len(ls), math.MaxInt32, func(i int) (string, uint64) {
		return ls[i].Key, uint64(math.Round(min(ls[i].Used, 1e12) * 1000))
	})
	if len(msgs) == 0 {
		return nil
	}
	return msgs[0]
}

// DecodeLevels decodes a message of EncodeLevels.
func DecodeLevels(b []byte) ([]Level, error) {
	var out []Level
	err := decode(b, func(k string, v uint64) { out = append(out, Level{Key: k, Used: float64(v) / 1000}) })
	return out, err
}
