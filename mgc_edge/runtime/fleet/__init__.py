"""The fleet view (`mgc-edge fleet mqtt://host/PREFIX --serve PORT`): every box that publishes under a prefix,
and every camera of each, on one page. `state` (what the messages say, thread-safe), `subscriber` (the broker,
through sinks/mqtt's client), `server` (the page and /api/status over the live view's HTTP and token rules)."""
