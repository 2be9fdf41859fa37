"""FID, KID and Inception Score: the FID InceptionV3 in Flax, offline weights, metrics and CLIs."""
