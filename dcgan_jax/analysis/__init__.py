"""Analysis tools: latent walks and arithmetic, feature probes, training curves, run reports."""
