"""Training of the vision branch on its own: the tower warm-up that stands in for a pretrained tower."""
