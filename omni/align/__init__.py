"""Preference alignment: DPO, IPO, SimPO, ORPO and KTO for text and speech responses (design brief section 7).

* :mod:`omni.align.data`: preference rows -> chosen / rejected examples in one batch (and KTO's unpaired rows).
* :mod:`omni.align.logps`: response log-probs (text tokens + per spoken frame its K code log-probs).
* :mod:`omni.align.losses`: the losses as pure functions; :mod:`omni.align.metrics`: TRL's metric names.
* :mod:`omni.align.reference`: frozen copy, disabled LoRA adapters, cached reference log-probs.
* :mod:`omni.align.task` / :mod:`omni.align.train`: the task of the shared loop and ``omni train dpo``.
* :mod:`omni.align.pairs`: ``omni data make-pairs``, preference pairs from sampled SFT answers.
"""
