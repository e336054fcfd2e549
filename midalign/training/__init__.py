"""LoRA training with the alignment loss: batches, losses, the trainer, early stopping, the retrieval evaluation,
the midalign-train pipeline and midalign-merge."""
