"""What the trainer and merger share: artifact storage, checksums, run summaries."""
