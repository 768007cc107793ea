"""The serving part: the one computation of feature values (``aggregation``), request rows and their wire
form (``rows``), online and point-in-time retrieval (``retrieval``), the gRPC adapter (``api``) and the
online-versus-offline consistency check (``check``)."""
