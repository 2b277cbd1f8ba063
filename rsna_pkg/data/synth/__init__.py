"""Synthetic, competition-shaped mammography data (``rsna synth``)."""

from rsna_pkg.data.synth.dataset import SynthConfig, SynthSummary, generate

__all__ = ["SynthConfig", "SynthSummary", "generate"]
