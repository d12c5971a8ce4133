"""Development tools of the repository (not shipped in any addon).

Import them with the repository root on ``sys.path``.
"""
