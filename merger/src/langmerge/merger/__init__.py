"""langmerge merger: merges language adapters into one model."""
