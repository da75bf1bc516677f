"""The trial program: one LoRA fine-tuning run, from parameters to ROUGE and a saved adapter.

config -> data (synthetic: the offline data set) -> model (tiny: the offline model) + LoRA ->
Trainer with callbacks -> evaluation (batched generation, rouge). `agent.train` is its entry point.
"""
