"""Augmentations of item fields for contrastive/self-supervised views.

Training-only building blocks applied through the item tower's hook
(`ItemTower.call(..., value_mask=..., field_transform=...)`); their randomness
is keyed by an explicit seed tensor (stateless ops), never by Keras dropout or
a global generator, so a resumed run draws the same masks as an uninterrupted
one.
"""
