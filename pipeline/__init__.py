"""cgankd: conditional GANs, density-ratio subsampling and cGAN-KD as a tracked pipeline."""

__version__ = "0.1.0"
