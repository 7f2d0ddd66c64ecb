"""PsychoChauffeur Telegram bot: `python -m bot run`, or `psychochauffeur run`."""

__version__ = "0.1.0"
