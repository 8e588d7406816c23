"""``track`` command line (placeholder until the tracker lands)."""
import argparse
import sys


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="track", description="Track an object in a video or webcam stream with a "
                                "budgeted binary (B2NN) Siamese or DiMP-style tracker. (coming: --video, --webcam, --budget)")
    p.parse_args(argv)
    print("track: the tracker is not built yet; see `mixbin summary --help`", file=sys.stderr)
    sys.exit(2)
