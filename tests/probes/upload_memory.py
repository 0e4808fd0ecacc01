"""Run in a fresh process by tests/test_hosting.py: N AppTest sessions of the app each upload a
different huge PNG on Model & layers; print the process RSS (MB) when idle, at the peak and after
the sessions are gone, as JSON. Usage: ``python tests/probes/upload_memory.py N SIDE [--no-trim]``."""

from __future__ import annotations

import gc
import io
import json
import sys
from pathlib import Path

from PIL import Image
from skimage import data
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def big_png(side: int) -> bytes:
    photo = Image.fromarray(data.chelsea()).resize((side // 10, side // 10))
    buffer = io.BytesIO()
    photo.resize((side, side), Image.Resampling.NEAREST).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def visit(name: str, payload: bytes) -> None:
    """One session: open Model & layers, upload; the page shows the upload, scaled down."""
    original_init = PagesManager.__init__

    def init(self, *args, **kwargs):  # as tests/test_app.py's _navigation_app fixture does
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("pages/model_layers.py").run()
    at.radio(key="ml_source").set_value("Upload").run()
    at.file_uploader(key="ml_upload").set_value((name, payload, "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("1024×1024 px" in str(image.proto) for image in at.get("image")), "the upload is not shown"


def main() -> None:
    n, side = int(sys.argv[1]), int(sys.argv[2])
    if "--no-trim" in sys.argv:  # to show what the server kept before release_freed_memory
        import featurelens.hosting.memory as memory

        memory._libc_malloc_trim = lambda: None
    png = big_png(side)
    visit("warmup.png", png + b"warmup")
    gc.collect()
    idle = peak = rss_mb()
    for i in range(n):
        visit(f"huge-{i}.png", png + f"visitor {i}".encode())
        peak = max(peak, rss_mb())
    gc.collect()
    print(json.dumps({"idle_mb": idle, "peak_mb": peak, "after_mb": rss_mb(), "png_bytes": len(png)}))


if __name__ == "__main__":
    main()
