"""The benchmarks, grouped by the question each answers.

- `suite/`: how fast is each path (raw engine, MLflow pyfunc, the app's API), and how close to
  the machine's limits? `python -m benchmarks.suite`; see docs/benchmarks.md.
- `fullscale/`: what does the real Phi-3-mini take (time, memory, disk), and how much memory does
  each heavy step need? `python -m benchmarks.fullscale`; see docs/fullscale.md.
- `public_space/`: does a public Space hold under load? `python -m benchmarks.public_space`.
- `costs/`: what do recording (traces) and fidelity scoring cost a comparison?

The modules at this level are what the groups share: the engines at the in-process depths
(`engines.py`), the app served beside a no-op endpoint (`served.py`, `noop_app.py`), the
machine's limits (`machine.py`), a Phi-3-mini-shaped model (`shaped_model.py`) and the ONNX
exports (`exports.py`).
"""
