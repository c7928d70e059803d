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


def engine_binary(name: str, variable: str):
    """One of llama.cpp's own programs: ``$variable``, else the one `make install` puts beside this Python, else
    PATH; None when there is none."""
    import os
    import shutil
    import sys
    from pathlib import Path

    named = os.environ.get(variable)
    if named:
        return Path(named)
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return beside
    found = shutil.which(name)
    return Path(found) if found else None


class LlamaServer:
    """llama.cpp's llama-server on loopback for a benchmark: ``with LlamaServer(gguf, slots=4) as url:``."""

    def __init__(self, gguf, slots: int = 1, threads: list[str] | None = None, n_ctx: int = 4096) -> None:
        """``threads``: llama-server's thread options; default, what taskclock runs the GGUF with in process."""
        self.gguf, self.slots, self.threads, self.n_ctx = gguf, slots, threads, n_ctx

    def __enter__(self) -> str:
        import os
        import socket
        import subprocess
        import tempfile
        import time

        import httpx

        from taskclock.runtime.backends.llamacpp import advised_threads, server_threads

        binary = engine_binary("llama-server", "TASKCLOCK_LLAMA_SERVER")
        if binary is None or not binary.is_file():
            raise SystemExit("no llama-server binary: run `make install` or set TASKCLOCK_LLAMA_SERVER")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        threads = self.threads if self.threads is not None else server_threads(advised_threads(self.gguf))
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([str(binary), "-m", str(self.gguf), "--host", "127.0.0.1", "--port", str(port),
                                      "-np", str(self.slots), "-c", str(self.n_ctx), *threads],
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise SystemExit("llama-server did not start")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
