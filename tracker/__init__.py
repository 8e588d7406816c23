"""Siamese and DiMP-style trackers on B2NN backbones, training of the FP tracker, the zoo and the ``track`` CLI."""
