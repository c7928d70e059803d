"""One module per backend, each exposing ``BACKEND``; see runtime.backend.get_backend."""
