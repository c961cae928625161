"""pytest-smoltrace: benchmark Hugging Face smolagents agents with pytest — every task is a test item.

Importing this package is cheap: litellm, smolagents and datasets are imported only when a model is configured.
"""

__version__ = "0.1.0"
