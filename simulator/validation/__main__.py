"""python -m simulator.validation: see simulator/validation/__init__.py."""

from simulator.validation import main

raise SystemExit(main())
