"""How fast the app answers: spec -> parameter count and table, drawing -> prediction, page render under load.

    python benchmarks/app_speed.py

- summary: `arch.summary(spec)` (builds the module too, for the no-Linear check), median of 50, per preset and for an
  edited spec; the Architecture page calls it on every change (target < 100 ms).
- predict: a 280x280 RGBA canvas drawing -> `drawing.to_mnist` -> `analysis.predict`, median of 50, per shipped model
  (target < 50 ms).
- render: server-side run time of each page (Streamlit's AppTest, the whole script) while a training job runs in the
  background on the same CPU; median and p95 over 20 runs (target < 0.5 s).
"""

import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import emit, machine

import numpy as np
from PIL import Image, ImageDraw

from mnistlab import arch, checkpoint, drawing, analysis, train

ROOT = Path(__file__).resolve().parent.parent


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def stats(name: str, times: list[float], **extra) -> None:
    times = sorted(times)
    emit({"measure": name, "median_ms": round(statistics.median(times) * 1000, 2),
          "p95_ms": round(times[int(0.95 * (len(times) - 1))] * 1000, 2), "n": len(times), **extra})


def a_drawing() -> np.ndarray:
    img = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    d = ImageDraw.Draw(img)
    d.line([(60, 50), (200, 50), (120, 240)], fill=(255, 255, 255, 255), width=18, joint="curve")
    return np.asarray(img)


def main() -> None:
    emit({"machine": machine()})
    for name, spec in arch.PRESETS.items():
        stats("summary", timed(lambda spec=spec: arch.summary(spec), 50), spec=name)
    edited = arch.ArchSpec.from_dict({**arch.preset("best").to_dict(), "dropout": 0.2})
    stats("summary", timed(lambda: arch.summary(edited), 50), spec="edited best")

    rgba = a_drawing()
    for name, path in checkpoint.shipped().items():
        model = checkpoint.load(path).model()
        stats("drawing->prediction", timed(lambda m=model: analysis.predict(m, drawing.to_mnist(rgba)), 50), model=name)
        stats("feature maps", timed(lambda m=model: analysis.feature_maps(m, drawing.to_mnist(rgba)), 20), model=name)

    from streamlit.testing.v1 import AppTest

    from mnistlab.ui import resources, teacher

    os.environ["MNISTLAB_RUNS"] = tempfile.mkdtemp()
    manager = resources.job_manager()
    job = manager.submit(arch.preset("seed"), train.TrainConfig(epochs=5), owner="bench")
    while manager.snapshot(job).status != "running":
        time.sleep(0.1)
    os.environ[teacher.ENV_TEACHER] = "bench-secret"
    for page in ("views/0_Home.py", "views/1_Architecture.py", "views/2_Train.py", "views/3_Draw.py",
                 "views/4_Runs.py", "views/5_Teacher.py"):
        def render(page=page):
            at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
            at.session_state["teacher_key"] = "bench-secret"  # the Teacher page unlocked, as the teacher sees it
            at.switch_page(page)
            at.run()
            assert not at.exception, at.exception
        render()  # warm caches (models, imports)
        stats("page render during training", timed(render, 20), page=page,
              job_status=manager.snapshot(job).status)
    manager.cancel(job)
    manager.close()


if __name__ == "__main__":
    main()
