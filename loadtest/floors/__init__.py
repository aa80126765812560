"""Framework floors for the benchmark: do-nothing handlers (validated order in, constant answer
out) that show what the web framework alone costs per request, with no model and no features."""
