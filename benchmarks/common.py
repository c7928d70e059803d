"""Options shared by the benchmarks that alternate taskclock with a reference path on one model."""
from __future__ import annotations

import argparse


def rounds_parser(doc: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--markdown", action="store_true", help="print a docs/BENCHMARKS.md section")
    return parser
