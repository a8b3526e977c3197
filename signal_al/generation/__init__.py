"""Generation: in-context prompts, backends (vLLM server, vLLM in-process, transformers), cleaning."""
