"""boltgate: a self-hostable Bitcoin Lightning payment gateway."""

__version__ = "0.1.0"
