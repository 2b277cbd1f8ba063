"""EDA: metadata statistics, DICOM header survey, galleries and figures (``rsna eda``)."""

from rsna_pkg.eda.build_report import EdaConfig, EdaResult, run_eda

__all__ = ["EdaConfig", "EdaResult", "run_eda"]
