"""Build the MMLU package data (runtime/data/mmlu/) from the CSV release in a local folder.

    python tools/build_mmlu_data.py /work/shared/mmlu

The CSVs go into one deflate zip byte for byte (members ``test/<subject>_test.csv`` and
``dev/<subject>_dev.csv``, fixed timestamps so a rebuild gives the same archive), and ``SHA256SUMS`` beside it
lists the zip's own checksum and every member's, in the source folder's ``sha256sum`` format. The source's
SHA256SUMS is checked first, so only the verified release can be packed.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from pathlib import Path

TARGET = Path(__file__).resolve().parent.parent / "runtime" / "data" / "mmlu"
ARCHIVE = "mmlu.zip"
SPLITS = ("test", "dev")
FIXED_TIME = (2021, 1, 12, 0, 0, 0)  # the ICLR 2021 release; any constant keeps the zip reproducible


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verified_files(source: Path) -> dict[str, bytes]:
    """Every CSV of the splits as ``<split>/<name>`` -> bytes, each checked against the source's SHA256SUMS."""
    sums = {}
    for line in (source / "SHA256SUMS").read_text(encoding="utf-8").splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.lstrip("*")] = digest
    files = {}
    for split in SPLITS:
        for path in sorted((source / "data" / split).glob(f"*_{split}.csv")):
            relative = f"data/{split}/{path.name}"
            data = path.read_bytes()
            if sums.get(relative) != sha256(data):
                sys.exit(f"build_mmlu_data: {relative} does not match {source / 'SHA256SUMS'}")
            files[f"{split}/{path.name}"] = data
    return files


def build(source: Path, target: Path = TARGET) -> Path:
    files = verified_files(source)
    target.mkdir(parents=True, exist_ok=True)
    archive = target / ARCHIVE
    with zipfile.ZipFile(archive, "w") as out:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            out.writestr(info, data, compresslevel=9)
    lines = [f"{sha256(archive.read_bytes())}  {ARCHIVE}"] + [f"{sha256(data)}  {name}" for name, data in files.items()]
    (target / "SHA256SUMS").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the MMLU release folder (data/test, data/dev, SHA256SUMS)")
    archive = build(parser.parse_args().source)
    print(f"wrote {archive} ({archive.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
