"""taskclock's headless core: backends, the timestamped event stream, metrics, sessions and bench.

Never imports Textual; torch, transformers and llama_cpp are imported only when a backend needs them.
"""
import os

# Before any engine loads: ggml's and torch's OpenMP threads then sleep between operations instead of spinning.
# Set here, not where llama_cpp is imported, because torch loads its OpenMP runtime globally and llama.cpp then
# uses that one, which reads this variable only once: a process that imported torch first (`doctor`) probed
# SmolLM2 with spinning threads (2 threads 98-135 tok/s) and chose a count that decodes at 45 tok/s in `run`
# (1 thread 87). With one thread per core, spinning threads on a machine also busy with other work starve each
# other (measured on 2 vCPUs under load: SmolLM2 decode 1 tok/s spinning, 60 tok/s passive). A value the user
# exported wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
