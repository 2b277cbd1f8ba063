"""Offline inference (``rsna infer``): streamed decoding, batched models, per-breast
submission. Import the submodules (pipeline, submission, ...) directly; this package
module stays light so the CLI can import the command without torch."""
