"""The embedded local sweep controller: store, engine glue, launcher, metrics, agent."""
