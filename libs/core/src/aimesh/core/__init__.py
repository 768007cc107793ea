"""aimesh.core: the shared runtime every aimesh service is built from.

Only this package imports aiokafka; services see transport-free handlers and typed settings.
"""
