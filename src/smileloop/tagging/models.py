"""Tag groups, tags and the tags on each patient (manual, rule and keyword), with who or what set them."""
