"""In-process gRPC: one component calling another that runs in the same process, through the same
generated stubs, the same method handlers and the same interceptors as over the network, with no
socket and no serialization.

* :class:`LocalServer` (``server.py``) is the in-process face of a service's gRPC server: every
  :class:`~uniwizard.server.ServiceHost` has one, filled by the same ``add_XServicer_to_server``
  call that fills its network server.
* :class:`InProcessChannel` (``channel.py``) is a ``grpc.aio.Channel`` to a ``LocalServer``: the
  links (``router_svc.links``, ``caller_svc.reporter``) take it where they would take a network
  channel, and every RPC — present or added later — works through it with no code of its own.
"""

from uniwizard.inproc.channel import InProcessChannel
from uniwizard.inproc.server import LocalServer

__all__ = ["InProcessChannel", "LocalServer"]
