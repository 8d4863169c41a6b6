"""``python -m napari_heartbox`` runs the CLI."""

import sys

from napari_heartbox.cli import main

sys.exit(main())
