"""taskclock's headless core: backends, the timestamped event stream, metrics, sessions and bench.

Never imports Textual; torch, transformers and llama_cpp are imported only when a backend needs them.
"""
