"""``python -m bench``: placeholder until the frame-path harness lands."""

from __future__ import annotations

if __name__ == "__main__":
    print("no benchmarks yet")
