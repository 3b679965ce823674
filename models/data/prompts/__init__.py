"""Frozen evaluation prompt sets, one JSON file per concept (read them with `models.data.prompt_sets`)."""
