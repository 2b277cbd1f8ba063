"""Backbone zoo, image+metadata fusion head, checkpoint I/O."""
