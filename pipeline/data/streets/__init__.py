"""The embedded data set: procedural, Cityscapes-like street scenes (layouts, then rendering)."""
