"""Argument types the ``lumina`` verbs share: every numeric flag has a range, refused with a message outside it."""

from __future__ import annotations

import argparse


def number(kind, low, high, *, low_open=False):
    """argparse type: a number in [low, high] (low excluded when low_open), with a message naming the range."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (low < value if low_open else low <= value) or value > high or value != value:
            bound = f"({low}" if low_open else f"[{low}"
            raise argparse.ArgumentTypeError(f"{text} is out of range {bound}, {high}]")
        return value

    return parse
