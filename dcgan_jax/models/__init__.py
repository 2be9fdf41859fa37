"""Generators and discriminators (networks), and the layers they are built of."""
