"""Image recipes: the files each lab image is built from (data, not code)."""
