"""python -m bench: the pipeline benchmark (bench/pipeline.py); `python -m bench drill`: the operations
drill (bench/drill.py); `python -m bench start`: the bot's start time (bench/start.py); `python -m bench
converge`: converge time of four hosts vs one (bench/converge.py)."""

import sys

if sys.argv[1:2] == ["drill"]:
    from bench.drill import main

    raise SystemExit(main(sys.argv[2:]))
if sys.argv[1:2] == ["start"]:
    from bench.start import main

    raise SystemExit(main(sys.argv[2:]))

if sys.argv[1:2] == ["converge"]:
    from bench.converge import main

    raise SystemExit(main(sys.argv[2:]))

from bench.pipeline import main

raise SystemExit(main())
