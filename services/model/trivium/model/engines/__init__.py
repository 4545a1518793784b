"""Inference engines behind the model service's OpenAI API."""
