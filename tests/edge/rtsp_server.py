"""A real RTSP server for tests: GStreamer's gst-rtsp-server serving a test pattern.

Run with the system Python that has PyGObject (Debian: python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-base, gstreamer1.0-plugins-good):

    /usr/bin/python3 tests/edge/rtsp_server.py PORT [MOUNT]

It serves Motion-JPEG over RTP at ``rtsp://127.0.0.1:PORT/MOUNT``, over TCP
only (so a client that asks for UDP fails: the tests prove we ask for TCP), and
prints ``ready`` when it listens.
FFmpeg alone cannot do this: its RTSP listen mode only receives a pushed stream.
"""

import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

PIPELINE = (
    "( videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=15/1 "
    "! jpegenc quality=70 ! rtpjpegpay name=pay0 pt=26 )"
)


def main() -> int:
    port = sys.argv[1]
    mount = "/" + (sys.argv[2] if len(sys.argv) > 2 else "test").lstrip("/")
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr, flush=True)
        return 1
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
