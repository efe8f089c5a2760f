// Package middleware offers the steps of app.Server's chain as Echo
// middleware of their own, for an Echo app that is not an app.Server:
// RequestID, AccessLog, Metrics, Recover, Shed, BodyLimit and Timeout.
// An app.Server needs none of them: its chain runs the same steps, in one
// middleware, configured by app.Config.
//
// Each comes as X(), with DefaultXConfig(), and XWithConfig(cfg), as
// Echo's own middleware do; Metrics takes the registry its series go to.
// Use them with app.ErrorHandler, which answers errors as problem+json.
// In the order app.Server runs them, outermost first:
//
//	e.HTTPErrorHandler = app.ErrorHandler(log, nil)
//	e.Use(middleware.RequestID(),
//		middleware.AccessLogWithConfig(middleware.AccessLogConfig{Logger: log}),
//		middleware.Metrics(reg),
//		middleware.RecoverWithConfig(middleware.RecoverConfig{Logger: log}),
//		middleware.Shed(), middleware.BodyLimit(), middleware.Timeout())
package middleware
