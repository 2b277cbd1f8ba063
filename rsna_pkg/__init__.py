"""rsna_pkg: data, DICOM preprocessing, training and offline inference for the
RSNA Screening Mammography Breast Cancer Detection competition."""

__version__ = "0.1.0"
