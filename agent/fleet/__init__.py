"""GPU boxes: one supervised agent per GPU, and RunPod pods that work a sweep and remove themselves."""
