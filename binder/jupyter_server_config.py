# Installed by postBuild into {sys.prefix}/etc/jupyter/. jupyter_server writes kernel messages to the
# browser's websocket with Nagle's algorithm on (tornado's default), so every small reply — a widget's
# round trip, the explorer's hover text — waits ~40 ms for the browser's delayed ACK. With TCP_NODELAY
# the bare round trip measured ~48 ms -> ~5 ms (bench/widgets.py --nodelay). The hook is a private
# tornado method: where it is missing (another tornado), nothing is changed.
import tornado.websocket as _ws

_receive = getattr(getattr(_ws, "WebSocketProtocol13", None), "_receive_frame_loop", None)

if _receive is not None:
    async def _nodelay_receive(self):
        if self.stream is not None:
            self.stream.set_nodelay(True)
        return await _receive(self)

    _ws.WebSocketProtocol13._receive_frame_loop = _nodelay_receive
