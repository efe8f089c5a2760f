package tier

import "context"

// Funcs is a Tier made of functions: a small step in the start order, such
// as running migrations after the data tier is up, or handing the address an
// app tier bound to the balancer in front of it. Nil functions do nothing.
type Funcs struct {
	TierName string
	OnStart  func(ctx context.Context) error
	OnStop   func(ctx context.Context) error
}

var _ Tier = Funcs{}

// Name returns TierName.
func (f Funcs) Name() string { return f.TierName }

// Start calls OnStart.
func (f Funcs) Start(ctx context.Context) error {
	if f.OnStart == nil {
		return nil
	}
	return f.OnStart(ctx)
}

// Stop calls OnStop.
func (f Funcs) Stop(ctx context.Context) error {
	if f.OnStop == nil {
		return nil
	}
	return f.OnStop(ctx)
}
