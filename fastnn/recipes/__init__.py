"""Recipes: per model family, one Config (a dataclass: the only place that family's defaults and presets are written)
and one function that builds the model, batches, optimizer, schedule and Trainer from a Config and data, and trains.

    fastnn.recipes.tagger    TaggerConfig, PRESETS, train / build / fit
"""
