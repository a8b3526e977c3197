"""The vLLM generator server: its process (:mod:`.process`), where it listens and who may call it
(:mod:`.access`), and its own hash-locked virtual environment (:mod:`.venv`)."""
