"""The version of pyrovae, in one place: ``setup.py`` reads this file as text, the package
re-exports it as ``pyrovae.__version__``, and run records name it. It imports nothing, so any
module may import it."""
__version__ = "0.1.0"
