"""Preprocessing shared by training and inference: one function from a DICOM path and a
PreprocessConfig to the model's input image, plus the pure steps it is built from."""

from rsna_pkg.preprocess.config import PreprocessConfig
from rsna_pkg.preprocess.pipeline import PreprocessResult, preprocess_file

__all__ = ["PreprocessConfig", "PreprocessResult", "preprocess_file"]
