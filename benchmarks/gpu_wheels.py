"""What the GPU check carries to a bare GPU machine, prepared here: the wheels it lacks, and llama.cpp's source.

The GPU machine (Python 3.12, CUDA torch and transformers) has no bitsandbytes, textual, gguf or llama-cpp-python
and cannot reach a package index. `download` fetches the wheels pinned in gpu_wheels.json (file name, SHA-256
and size) for CPython 3.12 manylinux x86_64 into .whl/ and checks each against its pin, so what travels is
exactly what the list says and the list's sizes are the carried bytes (tests/test_gpu_check.py adds them up
against the carry limit, offline). `pin` rewrites the list after a requirement changes. `llamacpp-source`
writes .gpu-src/: llama-cpp-python's sdist with the model vocabularies, tests and docs taken out (the whole
sdist is too big to carry), for the optional second command, `benchmarks/gpu_check.sh llamacpp`.

    .venv/bin/python benchmarks/gpu_wheels.py download | pin | llamacpp-source
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIST = ROOT / "benchmarks" / "gpu_wheels.json"
WHEELS = ROOT / ".whl"
SOURCE = ROOT / ".gpu-src"
CARRY_LIMIT = 64 * 2**20  # what one device call may carry: the working tree and the carried folders together
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")
LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
# Parts of the sdist no CUDA build of the Python binding reads: its git history (39 MB), llama.cpp's vocabularies…
UNUSED_SOURCE = (
    ".git", ".github", "docker", "vendor/llama.cpp/models", "vendor/llama.cpp/tests", "vendor/llama.cpp/docs",
    "vendor/llama.cpp/media", "vendor/llama.cpp/examples", "vendor/llama.cpp/tools/server/public",
    "vendor/llama.cpp/tools/server/webui", "vendor/llama.cpp/.devops", "vendor/llama.cpp/.github", "docs", "tests",
    "examples",
)


def pins() -> dict:
    return json.loads(LIST.read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pip_download(requirements: list[str], dest: Path) -> None:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", "3.12", "--implementation", "cp", *platforms, "-d", str(dest),
                    *requirements], check=True)


def download() -> None:
    """Fetch every pinned wheel into .whl/ (and nothing else there), each checked against its pin."""
    wheels = pins()["wheels"]
    WHEELS.mkdir(exist_ok=True)
    missing = [w for w in wheels if not (WHEELS / w["file"]).is_file() or sha256(WHEELS / w["file"]) != w["sha256"]]
    if missing:
        pip_download([w["requirement"] for w in missing], WHEELS)
    for path in WHEELS.iterdir():
        if path.name not in {w["file"] for w in wheels}:
            path.unlink()  # a stale wheel would make two versions of one package, which stops the whole install
    for w in wheels:
        path = WHEELS / w["file"]
        if not path.is_file() or sha256(path) != w["sha256"] or path.stat().st_size != w["bytes"]:
            raise SystemExit(f"{path.name} is not the pinned file: run `benchmarks/gpu_wheels.py pin` if the list "
                             "changed")
    total = sum(w["bytes"] for w in wheels)
    print(f"{len(wheels)} wheels in .whl/, {total / 2**20:.1f} MiB (carry limit {CARRY_LIMIT / 2**20:.0f} MiB "
          "with the working tree)")


def pin() -> None:
    """Download the list's requirements afresh and write their files, hashes and sizes into gpu_wheels.json."""
    data = pins()
    with tempfile.TemporaryDirectory() as tmp:
        pip_download([w["requirement"] for w in data["wheels"]], Path(tmp))
        files = {p.name.split("-")[0].lower().replace("_", "-"): p for p in Path(tmp).iterdir()}
        for w in data["wheels"]:
            path = files[w["requirement"].split("==")[0].lower().replace("_", "-")]
            w.update(file=path.name, sha256=sha256(path), bytes=path.stat().st_size)
    LIST.write_text(json.dumps(data, indent=1) + "\n")
    print(f"pinned {len(data['wheels'])} wheels in {LIST.relative_to(ROOT)}")


def llamacpp_source() -> None:
    """llama-cpp-python's sdist without the parts a build never reads, as .gpu-src/llama-cpp-python.tar.gz, with
    the platformdirs wheel beside it (run `download` first)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", "-d", tmp,
                        LLAMA_CPP_PYTHON], check=True)
        (sdist,) = Path(tmp).glob("*.tar.gz")
        with tarfile.open(sdist) as archive:
            archive.extractall(tmp, filter="data")
        (tree,) = [p for p in Path(tmp).iterdir() if p.is_dir()]
        for part in UNUSED_SOURCE:
            shutil.rmtree(tree / part, ignore_errors=True)
        SOURCE.mkdir(exist_ok=True)
        for wheel in pins()["wheels"]:  # taskclock's own needs there (platformdirs), without the 43 MB of .whl/
            if wheel["requirement"].startswith("platformdirs=="):
                shutil.copy(WHEELS / wheel["file"], SOURCE / wheel["file"])
        target = SOURCE / "llama-cpp-python.tar.gz"
        with tarfile.open(target, "w:gz") as archive:
            archive.add(tree, arcname="llama-cpp-python")
    print(f"wrote {target.relative_to(ROOT)}, {target.stat().st_size / 2**20:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["download", "pin", "llamacpp-source"])
    action = parser.parse_args().action
    {"download": download, "pin": pin, "llamacpp-source": llamacpp_source}[action]()


if __name__ == "__main__":
    main()
