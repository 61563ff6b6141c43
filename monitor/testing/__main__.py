"""``python -m monitor.testing sample_images``: write the bundled sample course."""

from monitor.testing.synthetic import main

raise SystemExit(main())
