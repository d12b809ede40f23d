"""Authoring: templates (catalog), rendering, variables, policy checks, platform limits, and the
message services (compose, submit, approve, reject, cancel, corrections)."""
