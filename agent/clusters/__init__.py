"""Schedulers beyond RunPod: Slurm, SkyPilot and Kubernetes. Each is a recipe around
`lora-sweep agent` (one agent per GPU), never a controller of its own."""
