package httpx

// StatusClientClosedRequest is the status the tiers record, in their
// metrics and access logs, for a client that went away before its answer:
// nginx's 499. No client ever sees it.
const StatusClientClosedRequest = 499
