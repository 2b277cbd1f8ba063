"""Training loop, DDP, backbone comparison and the training benchmark."""
