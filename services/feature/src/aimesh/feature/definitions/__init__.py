"""The definitions part: the YAML / pydantic model of entities, views and feature services (``specs``), the
expression language (``expressions``), the serving view of a set of definitions (``registry``), their
versions in SQL (``store``), how replicas follow them (``sync``) and their protobuf form (``wire``)."""
