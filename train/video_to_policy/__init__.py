"""Video-to-policy: demonstrations rendered to video -> inverse dynamics labels -> BC / diffusion policy
-> PPO fine-tuning -> economic evaluation, and per-demonstration data valuation.

Modules: :mod:`.records` (dataset format), :mod:`.demo_loader`, :mod:`.models`, :mod:`.idm`, :mod:`.bc`,
:mod:`.diffusion`, :mod:`.sim` (task adapters, collection), :mod:`.toy` (reduced ``point`` task),
:mod:`.finetune`, :mod:`.evaluate`, :mod:`.value` and the CLI (``python -m train.video_to_policy``).
"""
