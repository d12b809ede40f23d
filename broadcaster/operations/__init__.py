"""Operations: checking a deployment (`broadcaster doctor`)."""
