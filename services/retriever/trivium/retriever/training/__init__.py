"""Training a re-ranker: (question, passages) data, hard negatives, the cross-encoder fine-tune.

`questions` and `negatives` are pure Python; `cross_encoder` loads torch (import it when used).
"""
