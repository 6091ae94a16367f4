"""edge_svc: the OpenAI-compatible HTTP edge in front of the router (see ``edge_svc.app``).

A translation layer, like grpc-gateway: ``POST /v1/chat/completions`` and ``GET /v1/models``
over the router's gRPC contract, through ``uniwizard_client``. Pure modules translate
(``request``, ``messages``, ``response``, ``models``, ``errors``); ``app``, ``sse``, ``fetch``
and ``server`` do the I/O.
"""
