"""Broadcaster: emergency and time-sensitive notifications for school districts."""

import warnings

__version__ = "0.1.0"

# twitter-text-parser still imports pkg_resources, which warns on every import; the pin in
# pyproject.toml keeps it working, and staff should not see the warning on every command.
warnings.filterwarnings(
    "ignore", message="pkg_resources is deprecated", category=UserWarning, module=r"twitter_text\."
)
