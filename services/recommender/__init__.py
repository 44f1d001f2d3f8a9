"""Recommender: item embeddings, user profiles, a fine-tuned ranker and nightly batch runs."""
