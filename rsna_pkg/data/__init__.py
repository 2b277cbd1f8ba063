"""Competition tables: schema, synthetic generator, splits, datasets."""
