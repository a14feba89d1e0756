"""In-guest checks: each takes the guest (``host``) and what the platform publishes
(:class:`checks.context.GuestFacts`) and observes only what a root shell on the VM sees."""
