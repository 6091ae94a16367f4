"""Uniwizard inside an Evennia game: ``route``, ``think`` and ``backends`` commands and the
Workshop's ``BackendRouterScript``. See README.md, section "Evennia", for the settings lines.

Import the submodules (``uniwizard_evennia.commands``, ``uniwizard_evennia.scripts``) from game
code; this package imports nothing from Evennia itself so it is safe to import early.
"""
