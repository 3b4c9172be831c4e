"""Evaluation: versioned protocols, the training loop of evaluation nets, and scoring."""
