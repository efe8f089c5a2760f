package tier

import (
	"errors"
	"flag"
	"strconv"
	"time"
)

// DurationVar defines a time.Duration flag on fs, as fs.DurationVar does,
// for a service's main. A bad value gets an error that says what a
// duration looks like, where the flag package says only "parse error": a
// bare number such as "2" is told it needs a unit ("2s").
func DurationVar(fs *flag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var((*durationValue)(p), name, usage)
}

// durationValue is a flag.Value over a time.Duration.
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) String() string { return (*time.Duration)(d).String() }

func (d *durationValue) Get() any { return time.Duration(*d) }

// parseDuration is time.ParseDuration with an error a person can act on.
func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err == nil {
		return v, nil
	}
	if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
		return 0, errors.New("a duration needs a unit: " + s + "s, " + s + "ms or " + s + "m")
	}
	return 0, errors.New("not a duration: want a number with a unit, such as 2s, 500ms or 1m30s")
}
