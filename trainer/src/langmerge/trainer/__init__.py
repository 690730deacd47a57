"""langmerge trainer: trains one LoRA adapter for one language and task."""
