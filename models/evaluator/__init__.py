"""Motion-text evaluators (official T2M and ours), the word vectorizer and the violence classifier."""
