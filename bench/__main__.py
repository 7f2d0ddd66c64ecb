"""python -m bench: see bench/pipeline.py."""

from bench.pipeline import main

raise SystemExit(main())
