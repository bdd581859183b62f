"""Training core shared by every trainer: configs, data order, optimizer, checkpoints, the loop.

Every training command (tokenizer, flow decoder, vocoder, LLM stages, DPO)
composes these pieces with its own :class:`~omni.training.trainer.TrainTask`;
distribution, mixed precision and checkpoint I/O come from ``accelerate``.
"""
