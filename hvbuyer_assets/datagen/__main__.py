"""``python -m hvbuyer_assets.datagen ...``: see :mod:`hvbuyer_assets.datagen`."""

import sys

from hvbuyer_assets.datagen.cli import main

sys.exit(main())
